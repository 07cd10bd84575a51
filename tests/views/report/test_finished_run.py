"""The report of a real finished run: ``shotrun run`` on the built-in emulator, then
``shotrun report``, checked as HTML and, when Debian's chromium is installed, in the browser."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from runner.cli import main
from tests.helpers.browser import chromium, evaluate, find_chromium, open_page
from tests.helpers.report_page import parse
from tests.helpers.report_videos import VIDEOS, WATCH

KEYS = ["s01-arrival/take-1", "s01-arrival/take-2", "s02-look/take-1"]



def test_every_take_of_the_run_is_on_the_page(finished: Path) -> None:
    report = finished.parent / "renders" / "report.html"
    root = parse(report.read_text(encoding="utf-8"))
    tiles = {t.attrs["data-key"]: t for t in root.find_all("article", "tile")}
    assert sorted(tiles) == KEYS
    for key, tile in tiles.items():
        assert tile.attrs["data-status"] == "done"
        video = tile.find("video")
        assert video.attrs["src"] == f"{key}.mp4"
        assert (report.parent / unquote(video.attrs["src"])).is_file()
        assert (report.parent / unquote(video.attrs["poster"])).is_file()
        facts = tile.find("dl").text()
        assert "task-" in facts and "3.0 s" in facts
    totals = {t.attrs["data-total"]: t.find("b").text() for t in root.find_all("div", "total")}
    assert totals["takes"] == "3" and totals["done"] == "3"
    assert totals["of video"] == "9.0 s"
    assert len(root.find_all("script")) == 1


def test_csv_holds_the_same_records_as_status_json(
    finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(finished), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["takes"]
    path = finished.parent / "renders" / "trace.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == [record["id"] for record in records] == KEYS
    for row, record in zip(rows, records, strict=True):
        for field in ("status", "task_id", "submitted", "downloaded", "output", "sha256"):
            assert row[field] == str(record[field]), field
        assert float(row["credits"]) == record["credits"]


@pytest.mark.skipif(find_chromium() is None,
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_finished_run_plays_in_chromium(finished: Path, tmp_path: Path) -> None:
    binary = find_chromium()
    assert binary is not None
    report = finished.parent / "renders" / "report.html"
    with chromium(binary, tmp_path / "profile") as tools:
        session = open_page(tools, report.as_uri(), before_load=WATCH)
        videos = evaluate(tools, session, VIDEOS)
        pwned = evaluate(tools, session, "typeof window.__pwned")
        title = evaluate(tools, session, "document.title")
        violations = evaluate(tools, session, "window.__violations")
    assert sorted(video["key"] for video in videos) == KEYS
    for video in videos:
        assert video["error"] is None and video["readyState"] >= 1, video
        assert video["duration"] == pytest.approx(3.0, abs=0.2)
    assert pwned == "undefined" and title == "finished-run · shotrun report"
    assert violations == []
