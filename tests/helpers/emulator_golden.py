"""Golden JSON files: answers with their volatile values (ids, times, URLs) normalised.

Set ``SHOTRUN_UPDATE_GOLDEN=1`` to rewrite them from the emulator's current answers; review
the diff against docs/gateway-api.md before committing it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).parents[1] / "emulator" / "golden"
_PATTERNS = [
    (re.compile(r"task-unified-\d{10}-[a-z0-9]{8}"), "<task_id>"),
    (re.compile(r"http://127\.0\.0\.1:\d+"), "<base_url>"),
    (re.compile(r"sig=[A-Za-z0-9_-]+"), "sig=<signature>"),
    (re.compile(r"file_[A-Za-z0-9_-]{16}"), "<file_id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"), "<iso_time>"),
]


def normalise(value: Any) -> Any:
    """``value`` with ids, URLs and times replaced by placeholders (``created`` too)."""
    if isinstance(value, dict):
        return {k: ("<epoch>" if k == "created" and isinstance(v, int) else normalise(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        for pattern, placeholder in _PATTERNS:
            value = pattern.sub(placeholder, value)
    return value


def assert_golden(name: str, status: int, body: Any, headers: dict[str, str] | None = None
                  ) -> None:
    """The answer equals ``golden/<name>.json`` (status, body and the listed headers)."""
    actual = {"status": status, "body": normalise(body)}
    if headers:
        actual["headers"] = headers
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get("SHOTRUN_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected, f"{name}: answer differs from {path}"
