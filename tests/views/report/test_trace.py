"""The trace CSV: the status --json records, one row per take, safe in a spreadsheet."""

from __future__ import annotations

import csv
from pathlib import Path

from runner.state.trace import new_trace_record
from runner.views.report.trace import TRACE_FIELDS, trace_csv, write_trace_csv


def _read(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def test_columns_start_with_the_documented_trace_fields() -> None:
    header = next(csv.reader(trace_csv([]).splitlines()))
    assert header[:14] == ["id", "shot", "take", "status", "task_id", "submitted",
                           "completed", "downloaded", "wall_seconds", "polls", "credits",
                           "output", "sha256", "error"]
    assert tuple(header) == TRACE_FIELDS


def test_values_none_lists_and_numbers(tmp_path: Path) -> None:
    done = {**new_trace_record("s01/take-1", "s01", 1, ["act1", "night"]), "status": "done",
            "credits": 40.5, "wall_seconds": 62.5, "polls": 3, "output": "s01/take-1.mp4"}
    fresh = new_trace_record("s02/take-1", "s02", 1, [])
    path = write_trace_csv([done, fresh], tmp_path / "out" / "trace.csv")
    rows = _read(path.read_text(encoding="utf-8"))
    assert [row["id"] for row in rows] == ["s01/take-1", "s02/take-1"]
    assert rows[0]["credits"] == "40.5" and rows[0]["wall_seconds"] == "62.5"
    assert rows[0]["tags"] == "act1,night" and rows[0]["output"] == "s01/take-1.mp4"
    assert rows[1]["status"] == "new" and rows[1]["task_id"] == "" and rows[1]["tags"] == ""


def test_formula_looking_text_is_defused() -> None:
    row = {**new_trace_record("s01/take-1", "s01", 1, ["-x"]),
           "error": '=HYPERLINK("http://evil","x")'}
    read = _read(trace_csv([row]))[0]
    assert read["error"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert read["tags"] == "'-x"
