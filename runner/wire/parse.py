"""Parsing the gateway's answers (raw bytes) into typed values, and nothing else.

Kept free of I/O so it can be fuzzed: every function here either returns a value or raises
:class:`runner.core.errors.MalformedResponse` whose message says what was wrong, never any other
exception, whatever the bytes (the one exception: the file service's explicit
``success: false`` is a :class:`~runner.core.errors.PermanentGatewayError`).
Messages quote at most a short, redacted excerpt of the body.

Strictness is deliberate and uneven:

* what the run engine acts on (task ``id``, ``status``, ``progress``, ``results``, ``error``)
  must have the documented type, or the answer is malformed;
* hints (``task_info.estimated_time``, ``usage.credits_reserved``, ``video_duration``) that
  are missing or of the wrong type become ``None``: a bad hint must not fail a paid take.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from runner.core.errors import MalformedResponse, PermanentGatewayError
from runner.core.redact import clip, redact
from runner.wire.protocol import TASK_STATUSES, TaskState, UploadedFile

log = structlog.get_logger()

#: Largest JSON answer read from the gateway; anything bigger is malformed.
MAX_JSON_BYTES = 1024 * 1024

#: The most credits (or Kling units) one take can plausibly cost; more is a nonsense figure.
MAX_CREDITS = 1_000_000.0
#: The longest time estimate (seconds) that makes sense: a week.
MAX_SECONDS = 7 * 86400.0
#: The most requests ahead of one in a queue that makes sense (fal.ai's queue_position).
MAX_QUEUE_POSITION = 1_000_000.0
#: The longest video (seconds) that makes sense: an hour (the model renders seconds).
MAX_VIDEO_SECONDS = 3600.0

# Task ids end up in URLs, the state store and log lines: keep them plain.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}")
_EXCERPT = 120
_CODE_LIMIT = 100  # a business code is a word; a longer one is quoted, cut


def excerpt(body: bytes | str) -> str:
    """A short, printable, redacted quotation of ``body`` for error messages."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    short = text[:_EXCERPT] + ("…" if len(text) > _EXCERPT else "")
    return redact(repr(short))


def _constant(name: str) -> float:
    """``NaN``, ``Infinity``, ``-Infinity`` (Python's ``json.dumps`` writes them): read as
    floats, so each field judges them: a hint becomes unknown (:func:`reading`), what the
    run engine acts on is malformed."""
    return float(name.lower().replace("infinity", "inf"))


def parse_json_object(body: bytes, *, what: str) -> dict[str, Any]:
    """Decode ``body`` as a UTF-8 JSON object; ``what`` names the answer in messages."""
    if len(body) > MAX_JSON_BYTES:
        raise MalformedResponse(
            f"{what}: answer is larger than {MAX_JSON_BYTES} bytes ({len(body)} bytes)"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedResponse(
            f"{what}: answer is not UTF-8 (bad byte at offset {exc.start})"
        ) from None
    try:
        value = json.loads(text, parse_constant=_constant)
    except RecursionError:
        raise MalformedResponse(f"{what}: answer is JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, huge integers, NaN/Infinity
        raise MalformedResponse(
            f"{what}: answer is not valid JSON ({redact(str(exc))}): {excerpt(text)}"
        ) from None
    if not isinstance(value, dict):
        raise MalformedResponse(
            f"{what}: answer is JSON {type(value).__name__}, expected an object: "
            f"{excerpt(text)}"
        )
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hint(value: Any) -> float | None:
    """A non-negative finite number, or None for anything else (hints are optional)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not _is_number(value):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    return number


def reading(value: Any, *, field: str, what: str, limit: float) -> float | None:
    """A number a provider gives that shotrun only reads (credits, a duration, a time
    estimate): finite, from 0 to ``limit``; anything else is unknown (None), with a warning.

    A provider once answered ``credits: 1e308``: summed into the run's figures it printed
    ``credits inf`` and a 309-digit number. Absent (None) is simply unknown, without a word.
    """
    if value is None:
        return None
    number = _hint(value)
    if number is not None and number <= limit:
        return number
    _warn_unreadable(field, value, what)
    return None


_warned: set[tuple[str, str]] = set()  # (field, value) already warned about, this process


def _warn_unreadable(field: str, value: Any, what: str) -> None:
    shown = excerpt(repr(value))
    if (field, shown) in _warned:
        return
    if len(_warned) < 1000:
        _warned.add((field, shown))
    log.warning("provider_number_unreadable", field=field, value=shown, answer=what,
                treated_as="unknown")


def _opt_text(value: Any, field: str, what: str) -> str | None:
    """A string (numbers are accepted and stringified) or None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    raise MalformedResponse(f"{what}: '{field}' is {type(value).__name__}, expected a string")


def _required_text(data: Mapping[str, Any], field: str, named: str, what: str) -> str:
    """The string ``data[field]`` every such answer carries; ``named``: how a message calls
    the field (``task 'id'``, ``'status'``)."""
    if field not in data:
        raise MalformedResponse(f"{what}: no {named} in the answer")
    value = data[field]
    if not isinstance(value, str):
        raise MalformedResponse(f"{what}: {named} is {type(value).__name__}, expected a string")
    return value


def _task_id(data: Mapping[str, Any], what: str) -> str:
    task_id = _required_text(data, "id", "task 'id'", what)
    if not _TASK_ID.fullmatch(task_id):
        raise MalformedResponse(
            f"{what}: task id {excerpt(task_id)} is empty, longer than 256 characters or "
            "has characters outside A-Z a-z 0-9 . _ : -"
        )
    return task_id


def _status(data: Mapping[str, Any], what: str) -> str:
    status = _required_text(data, "status", "'status'", what)
    if status not in TASK_STATUSES:
        raise MalformedResponse(
            f"{what}: unknown task status {excerpt(status)} "
            f"(expected one of {', '.join(TASK_STATUSES)})"
        )
    return status


def _progress(value: Any, what: str) -> int:
    if value is None:
        return 0
    if not _is_number(value) or not math.isfinite(float(value)):
        raise MalformedResponse(
            f"{what}: 'progress' is {type(value).__name__}, expected a number 0-100"
        )
    return max(0, min(100, round(float(value))))


def _results(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedResponse(
            f"{what}: 'results' is {type(value).__name__}, expected a list of URLs"
        )
    urls: list[str] = []
    for i, item in enumerate(value):
        url = item.get("url") if isinstance(item, dict) else item
        if not isinstance(url, str) or not url:
            raise MalformedResponse(f"{what}: results[{i}] is not a URL string")
        urls.append(url)
    return tuple(urls)


def _error(value: Any, what: str) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return None, clip(redact(value))
    if not isinstance(value, dict):
        raise MalformedResponse(
            f"{what}: 'error' is {type(value).__name__}, expected an object"
        )
    code = _opt_text(value.get("code"), "error.code", what)
    message = _opt_text(value.get("message"), "error.message", what)
    return (
        None if code is None else clip(redact(code), _CODE_LIMIT),
        None if message is None else clip(redact(message)),
    )


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def task_from_json(data: Mapping[str, Any], *, what: str = "task answer") -> TaskState:
    """Build a :class:`TaskState` from an already decoded answer."""
    task_id = _task_id(data, what)
    status = _status(data, what)
    results = _results(data.get("results"), what)
    if status == "completed" and not results:
        raise MalformedResponse(f"{what}: task {task_id} is completed but has no result URL")
    code, message = _error(data.get("error"), what) if status == "failed" else (None, None)
    info = _section(data, "task_info")
    usage = _section(data, "usage")
    return TaskState(
        task_id=task_id,
        status=status,
        progress=100 if status == "completed" else _progress(data.get("progress"), what),
        results=results,
        error_code=code,
        error_message=message,
        estimated_time=reading(info.get("estimated_time"), field="task_info.estimated_time",
                               what=what, limit=MAX_SECONDS),
        credits_reserved=reading(usage.get("credits_reserved"), field="usage.credits_reserved",
                                 what=what, limit=MAX_CREDITS),
        video_duration=reading(info.get("video_duration"), field="task_info.video_duration",
                               what=what, limit=MAX_VIDEO_SECONDS),
    )


def parse_task(body: bytes, *, what: str = "task answer") -> TaskState:
    """Parse a creation or query answer (HTTP 2xx body) into a :class:`TaskState`."""
    return task_from_json(parse_json_object(body, what=what), what=what)


def parse_epoch(value: Any) -> float | None:
    """Epoch seconds from a number (seconds or milliseconds) or an ISO 8601 string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        number = _hint(value)
        if number is None:
            try:
                stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
            if stamp.tzinfo is None:  # a naive stamp from a server: read it as UTC
                stamp = stamp.replace(tzinfo=UTC)
            try:
                return stamp.timestamp()
            except (OverflowError, OSError, ValueError):
                return None
        value = number
    number = _hint(value)
    if number is None:
        return None
    return number / 1000.0 if number > 1e11 else number  # milliseconds look like 1.7e12


def parse_upload(body: bytes) -> UploadedFile:
    """Parse the file service's answer; ``success: false`` is refused with its ``msg``."""
    what = "upload answer"
    data = parse_json_object(body, what=what)
    success = data.get("success")
    if success is not True:
        msg = data.get("msg") or data.get("message") or "no message"
        raise _upload_refused(f"file service refused the upload: {excerpt(str(msg))}", data)
    payload = data.get("data")
    if not isinstance(payload, dict):
        raise MalformedResponse(f"{what}: 'data' is missing or not an object")
    url = payload.get("file_url") or payload.get("download_url")
    if not isinstance(url, str) or not url:
        raise MalformedResponse(f"{what}: no 'data.file_url' or 'data.download_url' string")
    file_id = payload.get("file_id")
    return UploadedFile(
        url=url,
        expires_at=parse_epoch(payload.get("expires_at")),
        file_id=_opt_text(file_id, "data.file_id", what),
    )


def _upload_refused(message: str, data: Mapping[str, Any]) -> PermanentGatewayError:
    """The file service's explicit refusal is an answer about the request, not malformed."""
    code = data.get("code")
    return PermanentGatewayError(message, code=str(code) if code is not None else None)


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What an HTTP error answer says about itself (every field may be missing)."""

    code: str | None = None
    message: str | None = None
    type: str | None = None
    param: str | None = None


def parse_error_body(body: bytes) -> ErrorBody:
    """Read ``{"error": {code, message, type, param}}`` (or the file service's ``msg``).

    Never raises: an error answer that cannot be read still has its HTTP status, which is
    what decides the outcome; the message then quotes the body instead.
    """
    try:
        data = parse_json_object(body, what="error answer")
    except MalformedResponse:
        text = body[:_EXCERPT * 4].decode("utf-8", "replace").strip()
        return ErrorBody(message=excerpt(text) if text else None)
    error = data.get("error")
    if isinstance(error, dict):
        def field(key: str) -> str | None:
            value = error.get(key)
            return clip(redact(str(value))) if isinstance(value, str | int | float) else None

        return ErrorBody(field("code"), field("message"), field("type"), field("param"))
    msg = data.get("msg") or data.get("message") or (error if isinstance(error, str) else None)
    return ErrorBody(message=clip(redact(str(msg))) if isinstance(msg, str | int) else None)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        stamp = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    try:
        return max(0.0, stamp.timestamp() - current)
    except (OverflowError, OSError, ValueError):
        return None
