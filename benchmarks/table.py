"""Printing benchmark rows as ``name | value | target | limit/peer | pass``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

COLUMNS = ("name", "value", "target", "limit", "pass")


def row(name: str, value: Any, target: str, limit: str = "", passed: bool | None = None
        ) -> dict[str, Any]:
    """One result row; ``passed`` None means "informative only"."""
    return {"name": name, "value": value, "target": target, "limit": limit, "pass": passed}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """A plain-text table of ``rows`` with aligned columns."""
    cells = [list(COLUMNS)] + [[_cell(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
