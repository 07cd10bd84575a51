"""The continuity example as its comments tell a user to use it: run, pick, run, export.

The export after the pick lists the picked take, in the timeline an editor imports and in
the provenance it carries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from tests.helpers.export import read_back, run

FAST = "api:\n  emulator: {queue_time: 0.01, processing_time: 0.03, render: full}\n"


def test_the_continuity_example_exports_the_picked_take(
        tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (repo_root / "manifests" / "examples" / "continuity.yaml").read_text("utf-8")
    manifest = tmp_path / "continuity.yaml"
    manifest.write_text(text.replace("shots:\n", FAST + "shots:\n", 1), encoding="utf-8")
    assert run(manifest) == 0
    assert cli.main(["pick", str(manifest), "s01-walk", "2"]) == 0
    assert run(manifest) == 0
    capsys.readouterr()
    cut = tmp_path / "cut"
    assert cli.main(["export", str(manifest), str(cut)]) == 0
    said = capsys.readouterr().out
    assert "01-s01-walk.mp4  <- s01-walk take 2 (picked)" in said
    assert "5 clips and edit.csv, edit.edl, edit.otio and edit.xml in" in said
    for name in ("edit.otio", "edit.edl", "edit.xml"):
        _timeline, clips = read_back(cut / name)
        assert [clip.name for clip in clips] == [
            "01-s01-walk.mp4", "02-s02-turn.mp4", "03-s03-lamp.mp4", "04-s04-gulls.mp4",
            "05-s05-credits.mp4"], name
    _timeline, clips = read_back(cut / "edit.otio")
    first = clips[0].metadata["shotrun"]
    assert (first["shot"], first["take"], first["picked"]) == ("s01-walk", 2, True)
    assert [c.metadata["shotrun"]["picked"] for c in clips[1:]] == [False] * 4
    chain = {c.metadata["shotrun"]["shot"]: c.metadata["shotrun"]["from_shot"] for c in clips}
    assert chain["s02-turn"] == [{"shot": "s01-walk", "sha256": first["sha256"]}]
    assert [link["shot"] for link in chain["s05-credits"]] == ["s01-walk"]
    assert chain["s04-gulls"] == []
