"""The end of ``shotrun run`` refreshes report.html and says where it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import cli
from tests.helpers.run import FAST_FLAGS, THREE, write_manifest


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


def _page(report: Path) -> tuple[int, str]:
    return report.stat().st_ino, report.read_text(encoding="utf-8")


def test_a_run_with_nothing_to_do_leaves_a_current_report_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    report = tmp_path / "out" / "report.html"
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    first = _page(report)
    capsys.readouterr()
    # Nothing to do: the page already shows this state; it is not remade (same file, same
    # bytes, "generated" time included), and the summary still names it.
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert f"report: {report}" in capsys.readouterr().out
    assert _page(report) == first
    # `shotrun report` always writes it.
    assert cli.main(["report", str(manifest)]) == 0
    assert _page(report)[0] != first[0]


def test_the_report_is_remade_when_the_store_or_the_manifest_changed(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, THREE)
    report = tmp_path / "out" / "report.html"
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    first = _page(report)
    assert cli.main(["pick", str(manifest), "s01", "2"]) == 0  # the store changed
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    second = _page(report)
    assert second[0] != first[0]
    assert 'class="tile s-done chosen picked"' in second[1]
    # The manifest changed (a tag: no take renders again, the page shows it).
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("[act2]", "[finale]"),
                        encoding="utf-8")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    third = _page(report)
    assert third[0] != second[0]
    assert "finale" in third[1]


def test_a_deleted_report_is_written_again(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, THREE)
    report = tmp_path / "out" / "report.html"
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    report.unlink()
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "s01/take-1.mp4" in report.read_text(encoding="utf-8")
