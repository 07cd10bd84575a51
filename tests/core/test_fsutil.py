"""Atomic, durable writes: old content or new content, never half, never a stray temp file."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from runner.core.fsutil import atomic_write_bytes, atomic_write_text, make_dirs, replace_durably
from tests.helpers.fsync_probe import record_fsyncs


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    atomic_write_text(target, "old")
    atomic_write_bytes(target, b"new \xe2\x9c\x93")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_default_mode_follows_the_umask_and_explicit_mode_is_exact(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "sidecar.json", "{}")
        atomic_write_text(tmp_path / "private.json", "{}", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sidecar.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")


def test_replace_durably_moves_the_file(tmp_path: Path) -> None:
    part = tmp_path / "take-1.mp4.part"
    part.write_bytes(b"video")
    replace_durably(part, tmp_path / "take-1.mp4")
    assert not part.exists()
    assert (tmp_path / "take-1.mp4").read_bytes() == b"video"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names fds via /proc")
def test_the_folder_flush_can_be_left_to_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = str(tmp_path.resolve())
    seen = record_fsyncs(monkeypatch)
    atomic_write_text(tmp_path / "a.json", "{}")
    assert len(seen) == 2 and seen[0].startswith(folder + "/.a.json.") and seen[1] == folder
    seen.clear()
    atomic_write_text(tmp_path / "b.json", "{}", sync_dir=False)
    assert len(seen) == 1 and seen[0].startswith(folder + "/.b.json.")
    assert (tmp_path / "b.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
    seen.clear()
    (tmp_path / "c.part").write_bytes(b"video")
    replace_durably(tmp_path / "c.part", tmp_path / "c.mp4")
    assert seen == [folder + "/c.part", folder]
    seen.clear()
    (tmp_path / "d.part").write_bytes(b"video")
    replace_durably(tmp_path / "d.part", tmp_path / "d.mp4", source_synced=True, sync_dir=False)
    assert seen == [] and (tmp_path / "d.mp4").read_bytes() == b"video"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names fds via /proc")
def test_make_dirs_flushes_each_new_folder_into_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path.resolve()
    seen = record_fsyncs(monkeypatch)
    assert make_dirs(root / "out" / "s01" / "history") is True
    assert (root / "out" / "s01" / "history").is_dir()
    # Outermost first: a folder's entry is flushed once the folder exists.
    assert seen == [str(root), str(root / "out"), str(root / "out" / "s01")]
    seen.clear()
    assert make_dirs(root / "out" / "s01") is False  # there already: nothing to flush
    assert make_dirs(root / "out" / "s02") is True
    assert seen == [str(root / "out")]


def test_make_dirs_refuses_a_file_in_the_way_and_applies_its_mode(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("in the way")
    for wanted in (tmp_path / "blocker", tmp_path / "blocker" / "below"):
        with pytest.raises(FileExistsError) as caught:
            make_dirs(wanted)
        assert caught.value.filename == str(tmp_path / "blocker")  # the message names it
    old = os.umask(0o022)
    try:
        make_dirs(tmp_path / "private", mode=0o700)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o700
