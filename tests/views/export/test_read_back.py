"""``shotrun export`` through the CLI on the built-in emulator, every format read back with
OpenTimelineIO and compared with the store and the exported files.

The manifest is the continuity example's (a two-take shot whose other take is picked, a shot
cut from its last frame, one that runs after it) between a shot that fails first (a leading
gap), one that fails later (a gap in the middle) and a multi-prompt shot with an image
reference and tags: every kind of clip and hole an export has to place.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from runner import cli
from runner.state import StateStore, TakeRecord, store_path_for
from runner.state.continuity import choose, frame_hashes
from tests.helpers.export import (
    RATE,
    expected_places,
    frame_count,
    read_back,
    run,
    sha,
    write_manifest,
)
from tests.helpers.pick_export import SHOTS as CONTINUITY

SHOTS = f"""\
  - id: s00-broken
    prompt: "refused"
    extra: {{duration: 99}}
{CONTINUITY}\
  - id: s04-broken
    prompt: "refused too"
    duration: 5
    extra: {{duration: 99}}
  - id: s05-pan
    multi_prompt:
      - {{prompt: "The coastline of @coast at dusk", duration: 2}}
      - {{prompt: "the lighthouse over @coast lights up", duration: 2}}
    images: [coast]
    duration: 4
    tags: [act2, wide]
"""
CLIPS = ["02-s01-walk.mp4", "03-s02-turn.mp4", "04-s03-credits.mp4", "06-s05-pan.mp4"]


@dataclass(frozen=True)
class Export:
    """One render and one export after a pick, shared by the checks below (read-only)."""

    cut: Path
    picked: int  # the take of s01-walk that was picked (not the default)
    records: dict[str, TakeRecord]
    sources: dict[str, dict[str, str]]  # take key -> from_shot -> SHA-256 it was cut from


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Export:
    root = tmp_path_factory.mktemp("edit")
    with pytest.MonkeyPatch.context() as patch:  # module-scoped: conftest's HOME is not set yet
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("XDG_CACHE_HOME", str(root / "home" / ".cache"))
        return _render_and_export(root)


def _render_and_export(root: Path) -> Export:
    manifest = write_manifest(root, SHOTS)
    assert run(manifest) == 1  # the two broken shots fail
    store_path = store_path_for(root / "out")
    with StateStore.open_readonly(store_path) as store:
        default = choose([r for r in store.records() if r.shot_id == "s01-walk"], None)
    assert default is not None
    other = 3 - default.take
    assert cli.main(["pick", str(manifest), "s01-walk", str(other)]) == 0
    assert run(manifest) == 1  # s02 re-rendered from the picked take
    assert cli.main(["export", str(manifest), str(root / "cut")]) == 0
    with StateStore.open_readonly(store_path) as store:
        return Export(root / "cut", other, {r.key: r for r in store.records()},
                      frame_hashes(store))


def test_export_writes_every_installed_format_and_the_clips(exported: Export) -> None:
    assert sorted(p.name for p in exported.cut.iterdir()) == [
        *CLIPS, "edit.csv", "edit.edl", "edit.otio", "edit.xml"]


@pytest.mark.parametrize("name", ["edit.otio", "edit.edl", "edit.xml"])
def test_each_format_reads_back_with_the_clips_in_order_to_the_frame(
        exported: Export, name: str) -> None:
    cut = exported.cut
    timeline, clips = read_back(cut / name)
    # Lengths are the files' own, counted by decoding them; gaps are the requested seconds.
    lengths: list[tuple[str | None, int]] = [
        (None, 3 * RATE), *((clip, frame_count(cut / clip)) for clip in CLIPS[:3]),
        (None, 5 * RATE), (CLIPS[3], frame_count(cut / CLIPS[3])),
    ]
    assert [length for _, length in lengths] == [72, 72, 72, 72, 120, 96]
    assert [(c.name, c.record_in, c.frames) for c in clips] == expected_places(lengths)
    assert timeline.name == "continuity"
    if name != "edit.edl":
        assert str(timeline.global_start_time.to_timecode()) == "01:00:00:00"
    # Each clip's media is the exported file (a file URL, or beside the EDL by its name).
    for clip in clips:
        if name == "edit.edl":
            assert clip.target_url == clip.name
        else:
            assert Path(unquote(urlparse(clip.target_url).path)) == (cut / clip.name).absolute()
        assert (cut / clip.name).is_file()


def test_the_otio_carries_each_takes_provenance_as_the_store_has_it(exported: Export) -> None:
    cut, other, records = exported.cut, exported.picked, exported.records
    _timeline, clips = read_back(cut / "edit.otio")
    metas = [clip.metadata["shotrun"] for clip in clips]
    assert [(m["shot"], m["take"], m["picked"], m["chosen"]) for m in metas] == [
        ("s01-walk", other, True, True), ("s02-turn", 1, False, True),
        ("s03-credits", 1, False, True), ("s05-pan", 1, False, True)]
    for clip, meta in zip(clips, metas, strict=True):
        record = records[meta["id"]]
        assert meta["id"] == f"{meta['shot']}/take-{meta['take']}"
        assert meta["sha256"] == record.sha256 == sha(cut / clip.name)
        assert meta["fingerprint"] == record.fingerprint
        assert meta["task_id"] == record.task_id and meta["task_id"]
        assert meta["credits"] == record.credits and meta["credits"] > 0
        assert meta["tags"] == list(record.tags)
        assert meta["file"] == clip.name and meta["frames"] == clip.frames
        assert meta["rate"] == RATE
        # The prompt as sent (the store's redacted payload), after @name renaming.
        payload = record.payload
        assert payload is not None
        sent = payload.get("prompt") or "\n".join(s["prompt"] for s in payload["multi_prompt"])
        assert meta["prompt"] == sent
    picked = metas[0]
    assert picked["from_shot"] == [] and metas[2]["from_shot"] == []  # s03 only runs after
    assert metas[1]["from_shot"] == [{"shot": "s01-walk", "sha256": picked["sha256"]}]
    assert exported.sources["s02-turn/take-1"] == {"s01-walk": picked["sha256"]}
    pan = metas[3]
    assert pan["prompt"] == ("The coastline of @Image1 at dusk\n"
                             "the lighthouse over @Image1 lights up")
    assert pan["multi_prompt"] == [
        {"prompt": "The coastline of @Image1 at dusk", "duration": 2},
        {"prompt": "the lighthouse over @Image1 lights up", "duration": 2}]
    assert pan["tags"] == ["act2", "wide"]


def test_the_otio_keeps_the_holes_and_says_which_shot_belongs_there(exported: Export) -> None:
    import opentimelineio as otio

    track = otio.adapters.read_from_file(str(exported.cut / "edit.otio")).tracks[0]
    gaps = [(item.name, dict(item.metadata["shotrun"]), item.duration().value)
            for item in track if isinstance(item, otio.schema.Gap)]
    assert gaps == [
        ("s00-broken (not rendered)",
         {"shot": "s00-broken", "rendered": False, "seconds": 3.0}, 72),
        ("s04-broken (not rendered)",
         {"shot": "s04-broken", "rendered": False, "seconds": 5.0}, 120),
    ]


def test_the_edl_has_unique_cmx_reels_and_the_exported_file_names(exported: Export) -> None:
    _timeline, clips = read_back(exported.cut / "edit.edl")
    assert [clip.metadata["cmx_3600"]["reel"] for clip in clips] == [
        "S01WALK", "S02TURN", "S03CREDI", "S05PAN"]
    assert [clip.target_url for clip in clips] == CLIPS
    text = (exported.cut / "edit.edl").read_text()
    assert text.startswith("TITLE: continuity\n")
    assert ("001  S01WALK  V     C        00:00:00:00 00:00:03:00 01:00:03:00 01:00:06:00"
            in text)
    assert "004  S05PAN   V     C        00:00:00:00 00:00:04:00 01:00:17:00 01:00:21:00" in text


def test_the_fcp_xml_logs_shot_take_and_prompt_for_premiere_and_resolve(
        exported: Export) -> None:
    other = exported.picked
    _timeline, clips = read_back(exported.cut / "edit.xml")
    logged = [clip.metadata["fcp_xml"]["logginginfo"] for clip in clips]
    assert [(info["scene"], info["shottake"]) for info in logged] == [
        ("s01-walk", str(other)), ("s02-turn", "1"), ("s03-credits", "1"), ("s05-pan", "1")]
    assert logged[0]["description"] == "A woman in a red coat walks along the beach"
    for info in logged:
        record = exported.records[f"{info['scene']}/take-{info['shottake']}"]
        assert f"fingerprint {record.fingerprint}" in info["lognote"]
        assert f"sha256 {record.sha256}" in info["lognote"]
        assert f"task {record.task_id}" in info["lognote"]
    assert logged[0]["lognote"].startswith(f"shotrun s01-walk/take-{other} picked;")


def test_the_csv_keeps_its_columns_and_matches_the_timeline(exported: Export) -> None:
    cut, other = exported.cut, exported.picked
    with (cut / "edit.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert list(reader.fieldnames or [])[:10] == [
        "index", "shot_id", "take", "file", "frames", "seconds", "record_in", "record_out",
        "picked", "sha256"]
    assert [(r["index"], r["shot_id"], r["take"], r["picked"]) for r in rows] == [
        ("2", "s01-walk", str(other), "yes"), ("3", "s02-turn", "1", "no"),
        ("4", "s03-credits", "1", "no"), ("6", "s05-pan", "1", "no")]
    assert [(r["record_in"], r["record_out"], r["frames"]) for r in rows] == [
        ("01:00:03:00", "01:00:06:00", "72"), ("01:00:06:00", "01:00:09:00", "72"),
        ("01:00:09:00", "01:00:12:00", "72"), ("01:00:17:00", "01:00:21:00", "96")]
    _timeline, clips = read_back(cut / "edit.otio")
    for row, clip in zip(rows, clips, strict=True):
        assert row["file"] == clip.name and row["sha256"] == sha(cut / clip.name)
        assert row["task_id"] == clip.metadata["shotrun"]["task_id"]
        assert row["fps"] == "24"
