"""The end of ``shotrun run`` refreshes report.html and says where it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import cli
from tests.commands.test_run import FAST_FLAGS, THREE, write_manifest


def test_run_writes_the_report_and_names_it_in_the_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    report = tmp_path / "out" / "report.html"
    assert f"report: {report}" in capsys.readouterr().out
    page = report.read_text(encoding="utf-8")
    for key in ("s01/take-1.mp4", "s01/take-2.mp4", "s02/take-1.mp4"):
        assert key in page


def test_no_report_leaves_it_alone_and_json_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), "--no-report", "--json", *FAST_FLAGS]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["report"] is None
    assert not (tmp_path / "out" / "report.html").exists()
