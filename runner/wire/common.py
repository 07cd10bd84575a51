"""What the fal and Kling translations share (pure: no I/O, nothing heavy imported, since
the manifest checks measure shots with them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runner.core.errors import MalformedResponse
from runner.core.redact import clip, redact
from runner.wire.parse import parse_json_object
from runner.wire.payload import TOP_LEVEL_FIELDS

# Fields of the canonical (gateway) payload every provider translates; anything else in a
# payload came from a shot's ``extra`` and is passed through as is.
CANONICAL = frozenset(TOP_LEVEL_FIELDS)
#: The key the scheduler adds to a payload for a provider that lets the client name its task.
CLIENT_TASK_ID = "external_task_id"

_REFERENCE = re.compile(r"@(Image|Element)(\d+)\b")

# A failed task's words -> shotrun's business code (runner.core.errors): neither fal nor Kling
# documents codes for a task that failed, only a message. Request-side words make it
# permanent (fix the shot); anything else is worth one more try (Kling: failed tasks are not
# charged).
_FAILURE_WORDS = (
    (("cancel",), "request_cancelled"),  # fal.ai: a request cancelled while queued
    (("risk", "policy", "sensitive", "content", "moderation", "nsfw"),
     "content_policy_violation"),
    (("image",), "image_processing_error"),
    (("parameter", "invalid", "validation"), "invalid_parameters"),
)


def rewrite_references(text: str, images: Mapping[int, str], elements: Mapping[int, str]
                       ) -> str:
    """``@Image<n>``/``@Element<n>`` replaced by ``images[n]``/``elements[n]`` (kept when
    absent: the manifest checks already refused a reference outside the shot's lists)."""
    def swap(match: re.Match[str]) -> str:
        table = images if match.group(1) == "Image" else elements
        return table.get(int(match.group(2)), match.group(0))

    return _REFERENCE.sub(swap, text)


def failure_code(message: str | None) -> str:
    """shotrun's business code for a provider's failed task, judged by its message."""
    words = (message or "").lower()
    for keys, code in _FAILURE_WORDS:
        if any(key in words for key in keys):
            return code
    return "service_error"


def passthrough(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload's fields that no translation knows (a shot's ``extra``), as they are."""
    return {key: value for key, value in payload.items()
            if key not in CANONICAL and key != CLIENT_TASK_ID}


def answer_object(body: bytes, what: str) -> dict[str, Any]:
    """A 2xx answer as a JSON object (MalformedResponse, status 200, otherwise)."""
    try:
        return parse_json_object(body, what=what)
    except MalformedResponse as exc:
        exc.status = exc.status or 200
        raise


def text_of(value: Any) -> str | None:
    """A message field as redacted text, cut to a quotation (a list of fal's validation
    details joined)."""
    if isinstance(value, str):
        return clip(redact(value))
    if isinstance(value, list):
        parts = [text_of(item.get("msg") if isinstance(item, dict) else item) for item in value]
        return clip("; ".join(p for p in parts if p)) or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
