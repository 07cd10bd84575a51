"""The trace CSV: stable columns, one row per take, safe in a spreadsheet."""

from __future__ import annotations

import csv
from pathlib import Path

from runner.report.trace import TRACE_FIELDS, trace_csv, trace_record, write_trace_csv
from tests.report.helpers import FakeRecord, demo_manifest, demo_records


def test_columns_are_the_documented_trace_fields() -> None:
    assert TRACE_FIELDS == ("id", "shot", "take", "status", "task_id", "submitted", "completed",
                            "downloaded", "wall_seconds", "polls", "credits", "output",
                            "sha256", "error")


def test_one_row_per_take_with_its_figures(tmp_path: Path) -> None:
    manifest = demo_manifest(tmp_path)
    records = demo_records(manifest)
    path = write_trace_csv([trace_record(r) for r in records], tmp_path / "trace.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == ["s01-arrival/take-1", "s02-look/take-1",
                                           "s01-arrival/take-2"]
    done, _, failed = rows
    assert done["status"] == "done" and done["task_id"] == "task-s01-arrival-1"
    assert done["submitted"] == "1970-01-01T00:16:40Z"
    assert done["downloaded"] == "1970-01-01T00:17:42.500000Z"
    assert done["wall_seconds"] == "62.5" and done["polls"] == "3" and done["credits"] == "40.5"
    assert done["output"] == "s01-arrival/take-1.mp4" and len(done["sha256"]) == 64
    assert failed["error"] == "content_policy_violation: The prompt <was> refused"
    assert failed["downloaded"] == "" and failed["output"] == ""
    assert failed["wall_seconds"] == "30.0"


def test_formula_looking_text_is_defused() -> None:
    record = FakeRecord("s01", 1, "failed", "f", key="s01/take-1",
                        last_error='=HYPERLINK("http://evil","x")')
    text = trace_csv([trace_record(record)])
    row = next(csv.DictReader(text.splitlines()))
    assert row["error"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert row["credits"] == ""
