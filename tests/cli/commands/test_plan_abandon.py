"""``shotrun plan`` warns, before any run, that re-rendering a changed take abandons its paid
task still at the gateway: the same warning ``run`` prints once it has decided.

The takes in flight are put there through the state store's own transitions (what a run
interrupted after its creations commits); the run that follows is real, on the emulator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import cli
from runner.manifest import load_manifest
from runner.state import StateStore, store_path_for
from runner.wire.payload import FingerprintPayloads
from tests.helpers.run import FAST_FLAGS, THREE, write_manifest

RATES = "budget: {max_credits: 500, rates: {720p: 8.1}}\n"


def _interrupted(root: Path) -> Path:
    """s02 submitted (task id known), s01/take-2 mid-creation, s01/take-1 never sent."""
    manifest_path = write_manifest(root, THREE, budget=RATES)
    manifest = load_manifest(manifest_path)
    with StateStore.open(store_path_for(manifest)) as store:
        store.sync(manifest.takes, FingerprintPayloads(manifest.takes, manifest.api.wire))
        store.mark_submitting("s02/take-1", {"prompt": "waves on rocks"}, 24.3)
        store.mark_submitted("s02/take-1", "task-paid-s02", 24.3)
        store.mark_submitting("s01/take-2", {"prompt": "a lighthouse at dawn"}, 24.3)
    return manifest_path


def test_plan_warns_that_a_changed_take_abandons_its_paid_task_as_run_then_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _interrupted(tmp_path)
    # Unchanged, an in-flight take is not abandoned: no warning. Its task was at the built-in
    # emulator, which ended with the run that created it: a run creates it again, and plan
    # says so (issue 21; it said "in flight: 1 take ... a run collects them").
    capsys.readouterr()
    assert cli.main(["plan", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "abandon" not in out and "created again: 1 take" in out
    assert "in flight: 1 take" not in out

    write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand")
                   .replace("at dawn", "at dusk"), budget=RATES)
    store = tmp_path / "out" / ".shotrun" / "state.sqlite"
    before = store.read_bytes()
    assert cli.main(["plan", str(manifest)]) == 0
    out = capsys.readouterr().out
    paid = "s02/take-1 changed while its task (task-paid-s02) was submitted: "
    lost = ("s01/take-2 changed while its task (a creation whose answer was lost) was "
            "ambiguous: ")
    assert f"warning: {paid}a run would abandon that paid render, not collect it" in out
    assert f"warning: {lost}" in out
    assert "s01/take-1 changed" not in out  # never sent: nothing paid, nothing abandoned
    assert "will run: 3 takes" in out

    assert cli.main(["plan", str(manifest), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    by_key = {t["key"]: t["status"] for t in document["takes"]}
    assert by_key["s02/take-1"]["abandons"] == {"task_id": "task-paid-s02",
                                                 "status": "submitted"}
    assert by_key["s01/take-2"]["abandons"] == {"task_id": None, "status": "ambiguous"}
    assert "abandons" not in by_key["s01/take-1"]
    abandoned = document["this_run"]["abandoned_tasks"]
    assert [(a["key"], a["task_id"]) for a in abandoned] == [
        ("s01/take-2", None), ("s02/take-1", "task-paid-s02")]
    assert abandoned[1]["message"].startswith(paid)
    assert store.read_bytes() == before  # plan never writes

    # The run then does what the plan said, and says so in the same words.
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--no-report"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {paid}" in err and f"warning: {lost}" in err
