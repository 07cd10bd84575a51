"""Loaded YAML that remembers where every value was written.

The loader builds plain ``dict``/``list`` subclasses (so that jsonschema and ordinary code see
ordinary JSON-like data) that also carry the line and column of each key and value. Every later
pass turns a key path such as ``("shots", 3, "duration")`` back into ``FILE:LINE:COL`` through
:func:`locate`, so no pass needs to carry marks around itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

Mark = tuple[int, int]  # 1-based line and column
KeyPath = tuple[str | int, ...]
NO_MARK: Mark = (0, 0)


class MDict(dict[str, Any]):
    """A YAML mapping: a dict with the marks of its keys and values."""

    __slots__ = ("key_marks", "mark", "value_marks")

    def __init__(self, mark: Mark = NO_MARK) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[str, Mark] = {}
        self.value_marks: dict[str, Mark] = {}


class MList(list[Any]):
    """A YAML sequence: a list with the mark of each item."""

    __slots__ = ("item_marks", "mark")

    def __init__(self, mark: Mark = NO_MARK) -> None:
        super().__init__()
        self.mark = mark
        self.item_marks: list[Mark] = []


def locate(root: Any, path: Sequence[str | int], *, key: bool = False) -> Mark:
    """Where the value at ``path`` is written (its key, with ``key=True``).

    Walks as far as the path exists and returns the deepest mark found, so a path into a value
    that is missing (a required key) points at the mapping that should hold it.
    """
    node = root
    best: Mark = getattr(root, "mark", NO_MARK)
    last = len(path) - 1
    for depth, step in enumerate(path):
        if isinstance(node, MDict) and isinstance(step, str) and step in node:
            marks = node.key_marks if key and depth == last else node.value_marks
            best = marks.get(step, best)
            node = node[step]
        elif isinstance(node, MList) and isinstance(step, int) and 0 <= step < len(node):
            best = node.item_marks[step] if step < len(node.item_marks) else best
            node = node[step]
        else:
            break
    return best


def format_path(path: Iterable[str | int]) -> str:
    """``("shots", 3, "duration")`` -> ``"shots[3].duration"`` (the form messages use)."""
    out: list[str] = []
    for step in path:
        if isinstance(step, int):
            out.append(f"[{step}]")
        else:
            out.append(f".{step}" if out else step)
    return "".join(out)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss among ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def show(value: Any, limit: int = 60) -> str:
    """A value as messages quote it: short, on one line."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, bool) or value is None:
        text = {True: "true", False: "false", None: "null"}[value]
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    else:
        text = repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind(value: Any) -> str:
    """The YAML name of a value's type, for "expected X, got Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
