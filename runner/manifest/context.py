"""What pass 2 carries around: the loaded file, where problems go, and what pass 1 refused.

Pass 2 (semantic rules and expansion) runs on "what pass 1 allowed": it must not stumble over a
value the schema already refused, nor report a second, confusing problem about it. Every pass-2
step therefore asks :meth:`Context.ok` before relying on a value, and reads values through the
type-checking getters below, which answer ``None`` for anything of the wrong type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.core.errors import Location, Problem
from runner.manifest.nodes import KeyPath, MDict, MList, format_path, locate


class Context:
    """One manifest being validated: root data, file name, base directory, problems."""

    def __init__(self, root: MDict, file: str, base_dir: Path, problems: list[Problem],
                 refused: set[KeyPath]) -> None:
        self.root = root
        self.file = file
        self.base_dir = base_dir
        self.problems = problems
        self._refused = refused
        self._tainted: set[KeyPath] = set()
        for path in refused:
            for end in range(len(path) + 1):
                self._tainted.add(path[:end])
        self._seen: set[tuple[int, int, str, str]] = set()

    # -- pass 1 verdicts -------------------------------------------------------------------
    def ok(self, path: KeyPath) -> bool:
        """True when pass 1 found nothing wrong at, inside or above ``path``."""
        if not self._refused:
            return True
        if path in self._tainted:
            return False
        return not any(path[:end] in self._refused for end in range(len(path)))

    # -- problems --------------------------------------------------------------------------
    def location(self, path: KeyPath, *, key: bool = False) -> Location:
        line, column = locate(self.root, path, key=key)
        return Location(self.file, line, column)

    def _add(self, path: KeyPath, message: str, severity: str, key: bool) -> None:
        location = self.location(path, key=key)
        shown = format_path(path)
        seen = (location.line, location.column, shown, message)
        if seen in self._seen:
            return  # the same finding through a default or a matrix copy: say it once
        self._seen.add(seen)
        self.problems.append(Problem(location, shown, message, severity))

    def error(self, path: KeyPath, message: str, *, key: bool = False) -> None:
        """Record an error about the value (or, with ``key``, the key) at ``path``."""
        self._add(path, message, "error", key)

    def warn(self, path: KeyPath, message: str) -> None:
        """Record a warning about the value at ``path``."""
        self._add(path, message, "warning", False)

    @property
    def failed(self) -> bool:
        """True when any error has been recorded so far (both passes)."""
        return any(p.severity == "error" for p in self.problems)


# -- typed getters: None for a missing value or one of the wrong type -----------------------
def get_map(data: Any, key: str) -> MDict | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, MDict) else None


def get_list(data: Any, key: str) -> MList | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, MList) else None


def get_str(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def get_int(data: Any, key: str) -> int | None:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def get_number(data: Any, key: str) -> float | None:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (what leaves the manifest module)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
