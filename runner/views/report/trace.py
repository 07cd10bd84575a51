"""The per-take trace as CSV (``shotrun report --csv``), for spreadsheets and scripts.

The rows are exactly the trace records of ``shotrun status --json`` (:mod:`runner.state.trace`
defines and documents the fields; they are a public interface), one column per field in the
same order; a list (``tags``) becomes one cell, comma-separated. A spreadsheet treats a cell
that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and gateway error messages are not
ours to trust, so such text cells get a leading apostrophe (the usual defence against CSV
formula injection); numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.state.trace import TRACE_FIELDS
from runner.views.report.pictures import write_atomic

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

__all__ = ["TRACE_FIELDS", "trace_csv", "write_trace_csv"]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def trace_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text of trace ``rows``: a header line, then one line per take."""
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
