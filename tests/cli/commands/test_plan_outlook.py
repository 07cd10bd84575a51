"""``shotrun plan`` after a run: totals split what a run would send from what is done, and
the cap is judged on what the manifest already spent, as the run's budget guard judges it.

Every store here is made by a real run against the built-in emulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from runner.state import StateStore
from tests.helpers.run import FAST_FLAGS, THREE, write_manifest

RATES = "budget: {max_credits: %s, rates: {720p: 8.1}}\n"
TAKE = 8.1 * 3  # 720p, 3 s


def _plan(manifest: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    capsys.readouterr()
    assert cli.main(["plan", str(manifest), *extra]) == 0
    out = capsys.readouterr().out
    return json.loads(out) if "--json" in extra else out


def _spent(root: Path) -> float:
    with StateStore.open_readonly(root / "out" / ".shotrun" / "state.sqlite") as store:
        return store.credits_committed()


def _run_then_edit(root: Path, cap: float) -> Path:
    manifest = write_manifest(root, THREE, budget=RATES % cap)
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--no-report"]) == 0
    write_manifest(root, THREE.replace("waves on rocks", "waves on sand"), budget=RATES % cap)
    return manifest


def test_plan_totals_count_only_what_a_run_sends_after_what_was_spent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _run_then_edit(tmp_path, 500)
    spent = _spent(tmp_path)
    assert spent >= 3 * TAKE - 1e-6  # three takes were paid for

    document = _plan(manifest, capsys, "--json")
    this_run = document["this_run"]
    assert this_run["will_run"] == {"takes": 1, "seconds": 3,
                                    "credits": pytest.approx(TAKE), "unpriced_takes": 0}
    assert this_run["already_done"] == {"takes": 2}
    assert this_run["in_flight"] == {"takes": 0} and this_run["not_run"] == {"takes": 0}
    assert this_run["credits_spent"] == pytest.approx(spent)
    assert this_run["credits_after_run"] == pytest.approx(spent + TAKE)
    assert this_run["max_credits"] == 500 and this_run["within_budget"] is True
    # The whole-manifest totals keep their fields for scripts.
    assert document["totals"]["takes"] == 3
    assert document["totals"]["credits"] == pytest.approx(3 * TAKE)
    assert document["totals"]["within_budget"] is True

    out = _plan(manifest, capsys)
    assert "will run: 1 take, 3 s of video, about 24.3 credits." in out
    assert f"already done: 2 takes ({spent:g} credits spent so far, all runs)." in out
    assert (f"budget: {spent:g} spent + about 24.3 to run = {spent + TAKE:g} "
            "(cap 500, within budget).") in out
    assert "about 72.9 credits" not in out  # the old, misleading whole-manifest line


def test_plan_says_over_budget_when_spent_plus_to_run_passes_the_cap_and_the_run_agrees(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The whole manifest (72.9) fits under 80, but 72.9 are spent: the edited take does not.
    manifest = _run_then_edit(tmp_path, 80)
    spent = _spent(tmp_path)
    document = _plan(manifest, capsys, "--json")
    assert document["this_run"]["within_budget"] is False
    assert document["this_run"]["takes_within_cap"] == 0
    assert document["totals"]["within_budget"] is False
    out = _plan(manifest, capsys)
    assert (f"budget: {spent:g} spent + about 24.3 to run = {spent + TAKE:g} (cap 80, "
            "OVER BUDGET: a run stops submitting at the cap, after about 0 of 1 take).") in out

    # The run does what the plan said: nothing is submitted, nothing more is spent.
    capsys.readouterr()
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--no-report"]) == 1
    assert _spent(tmp_path) == pytest.approx(spent)


def test_plan_without_a_store_keeps_its_one_line_total(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE, budget=RATES % 500)
    out = _plan(manifest, capsys)
    assert "3 takes of 2 shots, 9 s of video, about 72.9 credits (cap 500, within budget)." in out
    this_run = _plan(manifest, capsys, "--json")["this_run"]
    assert this_run["will_run"]["takes"] == 3 and this_run["credits_spent"] == 0
    assert not (tmp_path / "out").exists()
