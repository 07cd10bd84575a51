"""The per-take trace as CSV (``shotrun report --csv``), for spreadsheets and scripts.

The columns are the trace record's fields, the same names and order as ``shotrun status
--json`` (documented in the README): scripts may rely on them. A spreadsheet treats a cell that
starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and gateway error messages are not ours to
trust, so such text cells are written with a leading apostrophe (the usual defence against CSV
formula injection); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.report.media import write_atomic
from runner.report.view import RecordLike, as_seconds, wall_seconds

TRACE_FIELDS = (
    "id", "shot", "take", "status", "task_id", "submitted", "completed", "downloaded",
    "wall_seconds", "polls", "credits", "output", "sha256", "error",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _iso(value: object) -> str | None:
    seconds = as_seconds(value)
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def trace_record(record: RecordLike) -> dict[str, Any]:
    """One take's trace record (the fields of :data:`TRACE_FIELDS`) from its state record."""
    error = ": ".join(part for part in (record.last_error_code, record.last_error) if part)
    credits = record.credits_reserved
    if credits is None:
        credits = record.credits_estimated
    wall = wall_seconds(record)
    return {
        "id": record.key,
        "shot": record.shot_id,
        "take": record.take,
        "status": str(record.status),
        "task_id": record.task_id,
        "submitted": _iso(record.submitted_at),
        "completed": _iso(record.completed_at),
        "downloaded": _iso(record.downloaded_at),
        "wall_seconds": None if wall is None else round(wall, 3),
        "polls": record.polls,
        "credits": credits,
        "output": record.output_path,
        "sha256": record.sha256,
        "error": error or None,
    }


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def trace_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text of trace ``rows`` (a header line, then one line per take)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(TRACE_FIELDS)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in TRACE_FIELDS])
    return buffer.getvalue()


def write_trace_csv(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write the trace CSV to ``path`` atomically; returns ``path``."""
    write_atomic(path, trace_csv(rows).encode("utf-8"))
    return path
