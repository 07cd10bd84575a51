"""Counted nouns for messages: "1 take", "3 takes", never "1 takes" nor "take(s)".

Outside :mod:`runner.cli.commands` so that the report and the commands share it (every module
there is a command).
"""

from __future__ import annotations

from collections.abc import Sequence

_IRREGULAR = {"is": "are", "was": "were", "has": "have"}


def plural(count: int, word: str, many: str | None = None) -> str:
    """``word`` for one, else ``many`` (default: ``word`` + "s", or the verb's plural)."""
    if count == 1:
        return word
    return many if many is not None else _IRREGULAR.get(word, word + "s")


def count(number: int, word: str, many: str | None = None) -> str:
    """``"1 take"``, ``"2 takes"``, ``"0 takes"``; ``many`` for an irregular plural."""
    return f"{number} {plural(number, word, many)}"


def listed(items: Sequence[str], most: int) -> str:
    """The first ``most`` of ``items``, comma-separated, then "and N more" for the rest."""
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")
