"""The table of takes ``shotrun status`` prints: rich for a few, plain lines for thousands.

One row per take (:func:`row_cells`): status with what marks it (changed since, picked or
chosen, another size than expected), task id, attempts, cost, output and last error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runner.core.money import CREDITS, Figure, format_amount
from runner.core.redact import redact
from runner.state.trace import record_figure
from runner.views.status import MISSING, STALE

if TYPE_CHECKING:  # rich costs a tenth of a second to import: only small tables use it
    from rich.table import Table

_STYLE = {
    "done": "green", "failed": "red", "ambiguous": "magenta", "held": "magenta",
    "submitted": "cyan", "completed": "cyan", "downloading": "cyan", "submitting": "yellow",
    "new": "dim", MISSING: "red",
}


_COLUMNS = ("take", "status", "task id", "att.", "credits", "output", "last error")
# Above this many takes, aligned plain lines instead of a rich table: rich lays out every cell
# (about 0.8 ms a row), so 20,000 takes took 16 s to print; plain lines take a few ms.
PLAIN_ABOVE = 500


def row_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """One take's cells, in :data:`_COLUMNS` order."""
    status = row["status"]
    if status == "failed" and row["failure_kind"]:
        status = f"failed ({row['failure_kind']})"
    elif status == "submitted" and row["progress"]:
        status = f"submitted {row['progress']}%"
    if row["reason"] == STALE:
        status += ", changed since"
    if row["picked"]:
        status += ", picked"  # chosen with `shotrun pick`
    elif row["chosen"]:
        status += ", chosen"  # the first finished: what export ships until a pick
    if row.get("size_warning") and row["status"] == "done":
        status += f", {row['size_warning']}"  # recorded, not refused (runner.media.observed)
    error = row["error"]
    output = row["output"] or "-"
    if row["output"] and row["status"] not in ("done", MISSING):
        output += " (previous render)"  # kept in place until the new one is verified
    return (row["id"], status, row["task_id"] or "-", str(row["attempts"]),
            _cost_cell(record_figure(row)), output,
            redact(error) if error else "")


def _cost_cell(figure: Figure) -> str:
    """The credits column: ``40.5``, ``~40.5`` for an estimate; another unit than the
    gateway's credits is named (``2.4 Kling units``, ``~$0.34``); ``-`` when unknown."""
    if figure.amount is None:
        return "-"
    shown = format_amount(figure.amount, None if figure.unit == CREDITS else figure.unit)
    return f"~{shown}" if figure.estimated else shown


def rich_table(rows: Sequence[dict[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, expand=False)
    for column in _COLUMNS[:-1]:
        table.add_column(column, no_wrap=True)
    table.add_column(_COLUMNS[-1], overflow="fold")
    previous_shot = None
    for row in rows:
        if previous_shot is not None and row["shot"] != previous_shot:
            table.add_section()
        previous_shot = row["shot"]
        cells = [Text(cell) for cell in row_cells(row)]
        cells[1].stylize(_STYLE.get(row["status"], ""))
        table.add_row(*cells)
    return table


def plain_lines(rows: Sequence[dict[str, Any]]) -> str:
    """The same columns as :func:`rich_table`, as aligned plain lines (for thousands of takes)."""
    lines = [_COLUMNS, *map(row_cells, rows)]
    widths = [max(map(len, column)) for column in zip(*lines, strict=True)][:-1]
    # One format string for every line: the last column is not padded, then the line is
    # right-stripped (a row with no error ends without trailing spaces).
    template = "  ".join([*(f"{{:<{width}}}" for width in widths), "{}"])
    return "\n".join([template.format(*line).rstrip() for line in lines])
