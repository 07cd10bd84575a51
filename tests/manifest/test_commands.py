"""validate, plan and schema through ``runner.cli.main``; the demo and every example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from runner import cli
from runner.cli.plan_table import render_plan
from runner.core.errors import EXIT_OK, EXIT_USAGE
from runner.manifest import load_manifest, validate_file
from runner.views.plan_document import PlanStatus, plan_document, plan_rows
from tests.manifest.conftest import Write

FEATURES = {"matrix", "multi_prompt", "elements", "takes", "vars", "wire", "continuity",
            "budget"}


def _examples(repo_root: Path) -> list[Path]:
    return sorted((repo_root / "manifests" / "examples").glob("*.yaml"))


def test_demo_and_every_example_are_valid_without_warnings(repo_root: Path) -> None:
    files = [repo_root / "manifests" / "demo.yaml", *_examples(repo_root)]
    assert {p.stem for p in _examples(repo_root)} == FEATURES
    for path in files:
        assert validate_file(path) == [], path


def test_demo_is_small(repo_root: Path) -> None:
    manifest = load_manifest(repo_root / "manifests" / "demo.yaml")
    assert 4 <= len({t.base_shot_id or t.shot_id for t in manifest.takes}) <= 6
    assert len(manifest.takes) <= 10
    assert all(t.request.resolution == "720p" and 3 <= t.request.duration <= 5
               for t in manifest.takes)
    assets = [p for p in (repo_root / "manifests" / "assets").iterdir()
              if p.suffix in (".png", ".jpg")]
    assert sum(p.stat().st_size for p in assets) < 1024 * 1024


def test_validate_valid_file(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: p}\n")
    assert cli.main(["validate", "m.yaml"]) == EXIT_OK
    assert capsys.readouterr().out == "m.yaml: valid\n"


def test_validate_json(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    write("version: 1\nname: t\nshots:\n  - {id: a, prompt: p, duration: 2}\n")
    write("version: 1\nname: t\nvars: {x: 1}\nshots:\n  - {id: a, prompt: p}\n", "w.yaml")
    assert cli.main(["validate", "--json", "m.yaml", "w.yaml"]) == EXIT_USAGE
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False
    bad, warned = doc["files"]
    assert (bad["valid"], bad["errors"], warned["valid"], warned["warnings"]) == (
        False, 1, True, 1)
    assert bad["problems"][0] == {
        "file": "m.yaml", "line": 4, "column": 34, "path": "shots[0].duration",
        "severity": "error", "message": "2 is less than 3 (allowed 3..15)",
        "text": "m.yaml:4:34: shots[0].duration: 2 is less than 3 (allowed 3..15)"}


def test_plan_table(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", str(repo_root / "manifests" / "demo.yaml")]) == EXIT_OK
    out = capsys.readouterr().out
    for shot in ("s01-arrival", "s02-look.16x9", "s02-look.9x16", "s03-gull"):
        assert shot in out
    assert "6 takes of 5 shots, 26 s of video, about 218.7 credits (cap 500, within budget)" in out
    assert "Nothing was sent." in out


def test_plan_json(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "--json", str(repo_root / "manifests" / "examples" /
                                            "elements.yaml")]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    (take,) = doc["takes"]
    assert take["key"] == "s01-meet/take-1"
    assert take["payload"]["prompt"] == "@Element1 waves at @Element2 on the pier"
    front = take["payload"]["elements"][0]["frontal_image_url"]
    assert front.startswith("<upload ") and front.endswith("hero_front.png>")
    assert take["inputs"]["elements"][0]["frontal"]["mime"] == "image/png"
    assert take["credits"] == pytest.approx(8.1 * 5)
    assert doc["totals"] == {"shots": 1, "takes": 1, "seconds": 5, "credits": 40.5,
                             "unpriced_takes": 0, "max_credits": None, "within_budget": True,
                             # per unit of money (issue 21): an estimate, in credits
                             "unit": "credits", "money": {"credits": {
                                 "total": 40.5, "charged": 0.0, "estimated": 40.5}}}


def test_plan_budget_and_unpriced(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    write("version: 1\nname: t\nbudget: {max_credits: 50, rates: {audio: 1}}\nshots:\n"
          "  - {id: a, prompt: p, generate_audio: true, takes: 2}\n"
          "  - {id: b, prompt: p, resolution: 4k}\n")
    assert cli.main(["plan", "--json", "m.yaml"]) == EXIT_OK
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["credits"] == pytest.approx(2 * 5 * 9.1)
    assert (totals["unpriced_takes"], totals["within_budget"]) == (1, False)
    assert cli.main(["plan", "m.yaml"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "OVER BUDGET" in out and "1 take without a rate" in out


def test_plan_status_seam(repo_root: Path) -> None:
    manifest = load_manifest(repo_root / "manifests" / "examples" / "takes.yaml")
    statuses = {"s01-storm/take-1": PlanStatus("done"),
                "s01-storm/take-2": PlanStatus("changed", "prompt changed")}
    rows = plan_rows(manifest, statuses)
    assert [r.status for r in rows] == [statuses["s01-storm/take-1"],
                                        statuses["s01-storm/take-2"], None]
    doc = plan_document(manifest, statuses)
    assert doc["takes"][1]["status"] == {"state": "changed", "reason": "prompt changed"}
    assert "status" not in doc["takes"][2]
    console = Console(width=200, record=True)
    render_plan(manifest, rows, console)
    text = console.export_text()
    assert "prompt changed" in text and "status" in text
