"""The cache of big loaded manifests: used only when nothing the load read has changed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from PIL import Image

import runner.manifest as manifest_package
from runner.core import bulk
from runner.core.errors import ManifestError
from runner.core.model import Manifest
from runner.manifest import cache, load_manifest

MANIFEST = """\
version: 1
name: cached
output_dir: out
assets:
  coast: coast.png
defaults: {{resolution: 720p, duration: 3}}
shots:
  - id: s01
    prompt: "the coast of @coast{suffix}"
    images: [coast]
    takes: 2
    tags: [act1]
  - id: s02
    prompt: "waves on rocks"
    matrix: {{aspect_ratio: ["16:9", "9:16"]}}
"""


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(bulk, "_command", True)  # as in a shotrun command process
    monkeypatch.setattr(cache, "MIN_TAKES", 1)
    monkeypatch.setattr(cache, "SETTLE_SECONDS", -3600.0)  # files made just now count too
    Image.new("RGB", (400, 400), (10, 120, 200)).save(tmp_path / "coast.png")
    path = tmp_path / "shots.yaml"
    path.write_text(MANIFEST.format(suffix=""), encoding="utf-8")
    return path


def _no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> object:
        raise AssertionError("the manifest was loaded, not read from the cache")

    monkeypatch.setattr(manifest_package, "_analyse_paused", refuse)


def _entries() -> list[Path]:
    return sorted(cache._cache_dir().glob("*.pickle"))


def test_a_second_load_comes_from_the_cache_equal_and_private(
        manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_manifest(manifest)
    (entry,) = _entries()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.parent.stat().st_mode) == 0o700
    _no_loading(monkeypatch)
    again = load_manifest(manifest)
    assert isinstance(again, Manifest) and again == first
    assert [t.fingerprint for t in again.takes] == [t.fingerprint for t in first.takes]
    assert again.api.wire == first.api.wire and again.takes[0].location == first.takes[0].location


def test_an_edited_manifest_is_loaded_afresh(manifest: Path) -> None:
    first = load_manifest(manifest)
    manifest.write_text(MANIFEST.format(suffix=" at dusk"), encoding="utf-8")
    again = load_manifest(manifest)
    assert again.takes[0].fingerprint != first.takes[0].fingerprint
    assert "dusk" in (again.takes[0].request.prompt or "")


def test_an_edited_image_is_hashed_afresh(manifest: Path) -> None:
    first = load_manifest(manifest)
    Image.new("RGB", (400, 400), (200, 20, 20)).save(manifest.parent / "coast.png")
    again = load_manifest(manifest)
    assert again.takes[0].fingerprint != first.takes[0].fingerprint


def test_a_manifest_that_no_longer_loads_is_refused_not_served(manifest: Path) -> None:
    load_manifest(manifest)
    (manifest.parent / "coast.png").unlink()
    with pytest.raises(ManifestError, match=r"coast\.png"):
        load_manifest(manifest)


def test_the_path_as_written_is_part_of_the_key(
        manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_manifest(manifest)
    monkeypatch.chdir(manifest.parent)
    relative = load_manifest("shots.yaml")  # another spelling: loaded, locations say so
    assert relative.takes[0].location is not None
    assert relative.takes[0].location.file == "shots.yaml"


def test_damaged_entries_and_small_or_warned_manifests(
        manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_manifest(manifest)
    (entry,) = _entries()
    entry.write_bytes(b"not a pickle")
    assert load_manifest(manifest) == first  # a damaged entry is a normal load (and rewritten)
    # Too small: nothing stored.
    entry.unlink()
    monkeypatch.setattr(cache, "MIN_TAKES", 10_000)
    load_manifest(manifest)
    assert _entries() == []
    # A warning (a tiny image) is reported by a real load every time: nothing stored.
    monkeypatch.setattr(cache, "MIN_TAKES", 1)
    Image.new("RGB", (100, 100), (0, 0, 0)).save(manifest.parent / "coast.png")
    assert load_manifest(manifest).warnings
    assert _entries() == []


def test_a_file_changed_right_before_the_load_is_not_trusted(
        manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "SETTLE_SECONDS", 2.0)
    os.utime(manifest.parent / "coast.png")  # ctime: now
    load_manifest(manifest)
    assert _entries() == []


def test_library_callers_always_load_for_real(
        manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_manifest(manifest)
    assert _entries()
    monkeypatch.setattr(bulk, "_command", False)  # a test, a benchmark, another program
    _no_loading(monkeypatch)
    with pytest.raises(AssertionError, match="was loaded"):
        load_manifest(manifest)


def test_only_the_newest_entries_are_kept(
        manifest: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 2)
    copies = []
    for n in range(3):
        copy = tmp_path / f"copy{n}.yaml"
        copy.write_text(manifest.read_text(encoding="utf-8"), encoding="utf-8")
        load_manifest(copy)
        copies.append(copy)
        entry = cache._entry(copy)
        os.utime(entry, ns=(n * 10**9, n * 10**9))  # written in this order
    assert _entries() == sorted([cache._entry(copies[1]), cache._entry(copies[2])])


def test_an_entry_made_without_the_local_image_check_is_not_served_to_a_load_that_needs_it(
        manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the Kling API a local image is refused only for a real URL: an entry stored by a
    load for the emulator (or by status, which sends nothing) must not pass a run that sends
    to the real API; an entry of a load that made the check serves every load."""
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("output_dir: out\n",
                                     "output_dir: out\napi: {provider: kling}\n"), "utf-8")
    first = load_manifest(manifest, sends=False)  # as status loads: stored, unchecked
    assert _entries()
    with pytest.raises(ManifestError, match="takes images by URL only"):
        load_manifest(manifest)  # the documented Kling URL: the check is made, and fails
    monkeypatch.setenv("SHOTRUN_BASE_URL", "https://api.example")
    with pytest.raises(ManifestError, match="takes images by URL only"):
        load_manifest(manifest)
    monkeypatch.setenv("SHOTRUN_BASE_URL", "emulator")
    _no_loading(monkeypatch)
    assert load_manifest(manifest) == first  # the emulator needs no check: served
    assert load_manifest(manifest, base_url="emulator", sends=True) == first


def test_an_entry_made_with_the_local_image_check_serves_every_load(
        manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    text = manifest.read_text(encoding="utf-8").replace("assets:\n  coast: coast.png\n", "")
    text = text.replace("images: [coast]", "images: [https://cdn.example/coast.png]")
    manifest.write_text(text.replace("@coast", "@Image1").replace(
        "output_dir: out\n", "output_dir: out\napi: {provider: fal}\n"), "utf-8")
    first = load_manifest(manifest)  # the real fal.ai URL: checked, and clean
    _no_loading(monkeypatch)
    assert load_manifest(manifest, sends=False) == first
    assert load_manifest(manifest, base_url="https://queue.example") == first
