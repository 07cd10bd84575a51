"""``shotrun pick`` and ``shotrun export`` through the CLI, on the built-in emulator.

The emulator renders for real (``render: full``) but tiny times; the commands run through
``cli.main`` like a user's shell would, and their effects are read back from the disk.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import opentimelineio as otio
import pytest

from runner import cli
from runner.state import StateStore, store_path_for
from runner.state.continuity import choose, frame_hashes, picks
from tests.helpers.pick_export import SHOTS, run, sha, write_manifest


def test_pick_changes_the_source_and_export_ships_the_picked_takes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    assert run(manifest) == 0
    out = tmp_path / "out"
    store_path = store_path_for(out)
    with StateStore.open_readonly(store_path) as store:
        before = {r.key: r for r in store.records()}
        used = frame_hashes(store)
    # Without a pick, s02 starts from s01's first finished take; pick the other one.
    default = choose([before["s01-walk/take-1"], before["s01-walk/take-2"]], None)
    assert default is not None
    first, other = default.take, 3 - default.take
    assert used["s02-turn/take-1"] == {"s01-walk": before[f"s01-walk/take-{first}"].sha256}
    capsys.readouterr()

    assert cli.main(["pick", str(manifest), "s01-walk", str(other)]) == 0
    said = capsys.readouterr().out
    assert f"picked s01-walk take {other}" in said and "s02-turn" in said
    # plan says, before anything is sent, that the chain re-renders and why.
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    planned = {t["key"]: t["status"] for t in json.loads(capsys.readouterr().out)["takes"]}
    assert planned["s02-turn/take-1"] == {"state": "will run", "reason": "source changed"}
    assert planned[f"s01-walk/take-{other}"]["state"] == "done"
    assert planned["s03-credits/take-1"]["state"] == "done"
    # status marks the pick, and which take each shot's frame comes from.
    assert cli.main(["status", str(manifest), "--json"]) == 0
    rows = {t["id"]: t for t in json.loads(capsys.readouterr().out)["takes"]}
    mine, theirs = rows[f"s01-walk/take-{other}"], rows[f"s01-walk/take-{first}"]
    assert mine["picked"] and mine["chosen"]
    assert not theirs["chosen"] and not theirs["picked"]
    assert rows["s02-turn/take-1"]["chosen"] and not rows["s02-turn/take-1"]["picked"]
    assert rows["s02-turn/take-1"]["from_shots"] == ["s01-walk"]
    assert rows["s02-turn/take-1"]["reason"].startswith("changed since")
    assert rows["s03-credits/take-1"]["reason"] != rows["s02-turn/take-1"]["reason"]
    assert cli.main(["status", str(manifest)]) == 0
    assert "done, picked" in capsys.readouterr().out
    assert run(manifest) == 0
    said = capsys.readouterr()
    assert "source changed" in said.out + said.err
    with StateStore.open_readonly(store_path) as store:
        after = {r.key: r for r in store.records()}
        used = frame_hashes(store)
        assert picks(store)["s01-walk"].take == other
    assert used["s02-turn/take-1"] == {"s01-walk": after[f"s01-walk/take-{other}"].sha256}
    assert after["s02-turn/take-1"].sha256 != before["s02-turn/take-1"].sha256
    # s03 only runs *after* s02 (no frame of it): it is not rendered again.
    assert after["s03-credits/take-1"].sha256 == before["s03-credits/take-1"].sha256
    # A resume with nothing changed keeps the pick and renders nothing.
    assert run(manifest) == 0
    said = capsys.readouterr()
    assert "4 takes already done" in said.out + said.err

    # The report marks the picked tile and shows which shot feeds which.
    assert cli.main(["report", str(manifest)]) == 0
    capsys.readouterr()
    html = (out / "report.html").read_text()
    tile = re.search(r'<article class="tile s-done chosen picked"[^>]*data-key="([^"]+)"', html)
    assert tile is not None and tile.group(1) == f"s01-walk/take-{other}"
    assert html.count("chosen picked\"") == 1
    assert f'class="tile s-done" data-status="done" data-key="s01-walk/take-{first}"' in html
    assert re.search(r'class="tile s-done chosen"[^>]*data-key="s02-turn/take-1"', html)
    s01 = html[html.index('id="shot-s01-walk"'):html.index('id="shot-s02-turn"')]
    s02 = html[html.index('id="shot-s02-turn"'):html.index('id="shot-s03-credits"')]
    assert 'feeds <a href="#shot-s02-turn">s02-turn</a>' in s01
    assert 'starts from <a href="#shot-s01-walk">s01-walk</a>' in s02

    target = tmp_path / "cut"
    assert cli.main(["export", str(manifest), str(target)]) == 0
    names = sorted(p.name for p in target.iterdir())
    assert names == ["01-s01-walk.mp4", "02-s02-turn.mp4", "03-s03-credits.mp4", "edit.csv",
                     "edit.edl", "edit.otio", "edit.xml"]
    assert sha(target / "01-s01-walk.mp4") == after[f"s01-walk/take-{other}"].sha256
    assert sha(target / "02-s02-turn.mp4") == after["s02-turn/take-1"].sha256
    rows = list(csv.DictReader((target / "edit.csv").open()))
    assert [r["shot_id"] for r in rows] == ["s01-walk", "s02-turn", "s03-credits"]
    assert [r["take"] for r in rows] == [str(other), "1", "1"]
    assert rows[0]["picked"] == "yes" and rows[1]["picked"] == "no"
    assert rows[0]["record_in"] == "01:00:00:00" and rows[0]["record_out"] == "01:00:03:00"
    assert rows[1]["record_in"] == "01:00:03:00" and rows[2]["record_out"] == "01:00:09:00"
    edl = (target / "edit.edl").read_text()
    assert edl.startswith("TITLE: continuity\n")
    assert ("001  S01WALK  V     C        00:00:00:00 00:00:03:00 01:00:00:00 01:00:03:00"
            in edl)
    assert "003  S03CREDI V     C        00:00:00:00 00:00:03:00 01:00:06:00 01:00:09:00" in edl
    assert "* FROM CLIP NAME:  02-s02-turn.mp4" in edl
    # The .otio lists the picked take, with its provenance, as the store has it.
    timeline = otio.adapters.read_from_file(str(target / "edit.otio"))
    first_clip = next(iter(timeline.find_clips()))
    meta = first_clip.metadata["shotrun"]
    picked_record = after[f"s01-walk/take-{other}"]
    assert (meta["shot"], meta["take"], meta["picked"], meta["chosen"]) == (
        "s01-walk", other, True, True)
    assert meta["sha256"] == picked_record.sha256 and meta["task_id"] == picked_record.task_id
    s02_meta = list(timeline.find_clips())[1].metadata["shotrun"]
    assert s02_meta["picked"] is False
    assert [dict(link) for link in s02_meta["from_shot"]] == [
        {"shot": "s01-walk", "sha256": picked_record.sha256}]
    assert not [p for p in target.iterdir() if p.name.startswith(".")]


def test_export_links_skips_unfinished_shots_or_fails_with_strict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shots = SHOTS + ('  - id: s04-broken\n    prompt: "refused"\n'
                     "    extra: {duration: 99}\n")
    manifest = write_manifest(tmp_path, shots)
    assert run(manifest) == 1
    capsys.readouterr()
    strict = tmp_path / "strict"
    assert cli.main(["export", str(manifest), str(strict), "--strict"]) == 1
    assert "s04-broken" in capsys.readouterr().err
    assert not strict.exists()
    linked = tmp_path / "linked"
    assert cli.main(["export", str(manifest), str(linked), "--link"]) == 0
    err = capsys.readouterr().err
    assert ("warning: no finished take for: s04-broken; skipped, left as a gap on the timeline"
            in err)
    clip = linked / "01-s01-walk.mp4"
    with StateStore.open_readonly(store_path_for(tmp_path / "out")) as store:
        chosen = choose([r for r in store.records() if r.shot_id == "s01-walk"], None)
        source = Path(chosen.output_path if chosen else "")
    assert os.stat(clip).st_ino == os.stat(source).st_ino
    assert not (linked / "04-s04-broken.mp4").exists()
    assert "s04" not in (linked / "edit.csv").read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["pick", "{m}", "nope", "1"], "no shot 'nope'"),
    (["pick", "{m}", "s01-walk", "3"], "has takes 1 to 2, not 3"),
    (["export", "{m}", "{t}/x"], "nothing is rendered yet"),
    (["pick", "{m}", "s01-walk", "1"], "nothing is rendered yet"),
], ids=["unknown-shot", "no-such-take", "export-before-run", "pick-before-run"])
def test_bad_picks_and_exports_are_one_line_usage_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    manifest = write_manifest(tmp_path)
    args = [a.format(m=manifest, t=tmp_path) for a in argv]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_picking_an_unfinished_take_says_which_are_finished(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shots = ('  - id: s01\n    prompt: "refused"\n    takes: 2\n'
             "    extra: {duration: 99}\n")
    manifest = write_manifest(tmp_path, shots)
    assert run(manifest) == 1
    capsys.readouterr()
    assert cli.main(["pick", str(manifest), "s01", "2"]) == 2
    err = capsys.readouterr().err
    assert "s01/take-2 is not a finished take (failed)" in err
    assert "no take of it is finished yet" in err
