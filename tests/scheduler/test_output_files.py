"""How a run puts its outputs on disk: durable before ``done``, stale bytes never resumed.

The order is observed, not assumed: ``os.fsync`` and ``os.replace`` are wrapped to note what
they touched (the calls still happen), and so is the store's ``mark_done``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.emulator import run_emulator
from runner.state import StateStore, TakeStatus
from tests.helpers.engine import Shot, decode, fast_emulator, make_manifest, run_engine


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names fds via /proc")
async def test_video_and_sidecar_are_durable_before_the_take_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def note(kind: str, what: str) -> None:
        with lock:
            events.append((kind, what))

    real_fsync: Callable[[int], None] = os.fsync
    real_replace: Callable[..., None] = os.replace
    real_done = StateStore.mark_done

    def fsync(fd: int) -> None:
        real_fsync(fd)
        note("fsync", os.readlink(f"/proc/self/fd/{fd}"))

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        real_replace(src, dst, *args, **kwargs)
        note("replace", os.path.abspath(dst))

    def mark_done(self: StateStore, key: str, *args: Any, **kwargs: Any) -> Any:
        note("done", key)
        return real_done(self, key, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(StateStore, "mark_done", mark_done)
    manifest = make_manifest(tmp_path, [Shot("s01", "two takes side by side", takes=2),
                                        Shot("s02", "one take")])
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url)
    assert out.summary.all_done
    folder_of = {take.key: str((tmp_path / "out" / take.shot_id).resolve())
                 for take in manifest.takes}
    for take in manifest.takes:
        video = str((tmp_path / "out" / take.shot_id / f"take-{take.take}.mp4").resolve())
        sidecar = video[: -len(".mp4")] + ".json"
        done = events.index(("done", take.key))
        before = events[:done]
        video_moved = before.index(("replace", video))
        sidecar_moved = before.index(("replace", sidecar))
        # Contents flushed before their renames: the download's .part, the sidecar's temp.
        assert ("fsync", video + ".part") in before[:video_moved]
        folder = os.path.dirname(sidecar)
        temp = [what for kind, what in before[:sidecar_moved]
                if kind == "fsync" and os.path.dirname(what) == folder
                and os.path.basename(what).startswith(f".take-{take.take}.json.")]
        assert temp, "the sidecar's temp file was not flushed before its rename"
        # Both renames flushed by a flush of their folder after the later one.
        assert sidecar_moved < video_moved  # the sidecar names the video before it appears
        assert ("fsync", folder_of[take.key]) in before[video_moved:]
        # The shot folder, new in this run, is itself flushed into the output folder (and
        # that one into its parent) before anything in it counts as done.
        assert ("fsync", str((tmp_path / "out").resolve())) in before
        assert ("fsync", str(tmp_path.resolve())) in before


async def test_a_half_download_of_an_earlier_task_is_not_resumed(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "a new task for an old .part")])
    stale = tmp_path / "out" / "s01" / "take-1.mp4.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"sixteen bytes!!!")  # resumed with Range, it would splice two files
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url)
        stats = emulator.stats()
    assert out.store_records["s01/take-1"].status is TakeStatus.DONE
    assert stats["downloads"] == 1  # fetched once, whole: no spliced file rejected first
    assert decode(tmp_path / "out" / "s01" / "take-1.mp4")[1:] == (1280, 720)
    assert not stale.exists()
