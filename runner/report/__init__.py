"""The contact sheet: one self-contained HTML page with every take of a manifest.

``write_report(manifest, records)`` gathers (:mod:`.view`), renders (:mod:`.render`) and writes
``<output_dir>/report.html`` atomically, with poster frames under
``<output_dir>/.shotrun/posters/``. ``write_trace_csv`` writes the per-take trace records (the
same fields as ``shotrun status --json``) for spreadsheets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from runner.model import Manifest
from runner.report.media import write_atomic
from runner.report.render import render_html
from runner.report.view import RecordLike, ReportData, Totals, collect

log = structlog.get_logger()

REPORT_NAME = "report.html"

__all__ = [
    "REPORT_NAME",
    "ReportData",
    "WrittenReport",
    "collect",
    "render_html",
    "report_path",
    "write_report",
]


@dataclass(frozen=True, slots=True)
class WrittenReport:
    """Where the report went and the figures at its top (for the command's one-line answer)."""

    path: Path
    totals: Totals

    def describe(self) -> str:
        """``12 take(s): 9 done, 2 failed, 1 new``."""
        counts = ", ".join(f"{n} {status.replace('_', ' ')}"
                           for status, n in sorted(self.totals.by_status.items()))
        return f"{self.totals.takes} take(s)" + (f": {counts}" if counts else "")


def report_path(manifest: Manifest) -> Path:
    """Where the report of ``manifest`` is written."""
    return manifest.output_dir / REPORT_NAME


def write_report(
    manifest: Manifest, records: Iterable[RecordLike], *, path: Path | None = None,
    chosen: Mapping[str, tuple[int, bool]] | None = None,
) -> WrittenReport:
    """Write the report of ``manifest`` (at ``path``, default ``<output_dir>/report.html``);
    ``chosen`` (shot id -> chosen take, picked or not) marks the chosen tiles."""
    target = path or report_path(manifest)
    data = collect(manifest, records, chosen=chosen, page_dir=target.parent)
    write_atomic(target, render_html(data).encode("utf-8"))
    totals = data.totals()
    log.info("report_written", path=str(target), shots=len(data.shots), takes=totals.takes)
    return WrittenReport(target, totals)
