"""``shotrun run`` with a budget at the default-like creation pace: the reviewer's case.

Two shots of two takes, 40.5 credits each, a cap of 100: two takes fit, so two are done, even
though the second one waits for its turn at the pace while the third is found not to fit.
The built-in emulator runs in-process; ``status`` then reads the same story from the store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import cli

MANIFEST = """\
version: 1
name: budget-pace
output_dir: out
api:
  base_url: emulator
  emulator: {queue_time: 0.01, processing_time: 0.03, render: cached}
budget: {max_credits: 100}
defaults: {resolution: 720p, duration: 5}
shots:
  - id: s1
    prompt: "a lighthouse at dawn"
    takes: 2
  - id: s2
    prompt: "waves on rocks"
    takes: 2
"""
FAST_FLAGS = ["--poll-min", "0.01", "--poll-max", "0.05", "--backoff-base", "0.01",
              "--backoff-cap", "0.05"]


def test_two_takes_that_fit_the_budget_are_both_rendered_at_a_slow_pace(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", "sk-anything-for-the-emulator-123")
    manifest = tmp_path / "bud.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    # 10 creations a second: every take has its in-flight slot at once and waits for the pace.
    code = cli.main(["run", str(manifest), "--submit-rate", "10", *FAST_FLAGS])
    out, err = capsys.readouterr()
    assert code == 1, out  # stopped by the budget, with takes left
    assert "budget_exhausted" not in err  # the stop line says it; no log line repeats it
    assert "done: 2/4" in out, out
    assert "not submitted: 2" in out, out
    assert "credits: 81.0 this run, 81.0 of 100 in total" in out, out
    assert "stopped: budget reached: 81.0 of 100 credits reserved" in out, out

    assert cli.main(["status", str(manifest), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    takes = {(t["shot"], t["take"]): t for t in document["takes"]}
    assert takes[("s1", 1)]["status"] == "done" and takes[("s1", 2)]["status"] == "done"
    for n in (1, 2):
        assert takes[("s2", n)]["status"] == "new" and takes[("s2", n)]["attempts"] == 0
    assert document["totals"]["credits_committed"] == pytest.approx(81.0)
