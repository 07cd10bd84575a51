"""``shotrun plan`` after a run: what a new run would do with each take, and why (no writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import cli
from tests.helpers.run import FAST_FLAGS, THREE, write_manifest


def _plan_json(manifest: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


def _states(document: dict[str, object]) -> dict[str, tuple[str, str]]:
    takes = document["takes"]
    assert isinstance(takes, list)
    return {t["key"]: (t["status"]["state"], t["status"]["reason"]) for t in takes}


def test_plan_without_a_store_has_no_status_and_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    document = _plan_json(manifest, capsys)
    takes = document["takes"]
    assert isinstance(takes, list) and all("status" not in t for t in takes)
    assert not (tmp_path / "out").exists()


def test_plan_after_a_run_says_done_and_why_a_changed_shot_runs_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert set(_states(_plan_json(manifest, capsys)).values()) == {("done", "done")}

    write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand")
                   + "  - id: s03\n    prompt: a gull\n")
    store = tmp_path / "out" / ".shotrun" / "state.sqlite"
    before = store.read_bytes()
    states = _states(_plan_json(manifest, capsys))
    assert states["s01/take-1"] == ("done", "done")
    assert states["s02/take-1"] == ("will run", "prompt changed")
    assert states["s03/take-1"] == ("will run", "new")
    assert store.read_bytes() == before  # plan reads; it never writes the store

    capsys.readouterr()
    assert cli.main(["plan", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "prompt changed" in out and "will run" in out
