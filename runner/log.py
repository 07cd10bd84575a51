"""structlog set-up: human lines on the console, JSON lines in ``run.log``, secrets redacted.

Only the CLI prints; library code logs events in snake_case (``take_submitted``) with bound
shot/take context (``structlog.contextvars.bound_contextvars``).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import json.encoder
import logging
import os
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from runner.redact import redact, redact_json, redact_value


def _import_without_rich(name: str) -> ModuleType:
    """Import ``name`` (structlog) while rich looks absent, unless rich is loaded already.

    structlog imports rich, and through it attrs, when they are installed, only to draw
    coloured tracebacks; shotrun's console lines are plain (``plain_traceback`` below) and
    the commands that draw with rich import it themselves. Every command paid a tenth of a
    second for it: a sixth of ``shotrun status`` on 20,000 takes.
    """
    hide = "rich" not in sys.modules
    if hide:
        sys.modules["rich"] = None  # type: ignore[assignment]  # makes `import rich` fail
    try:
        return importlib.import_module(name)
    finally:
        if hide:
            del sys.modules["rich"]


if TYPE_CHECKING:
    import structlog
else:
    structlog = _import_without_rich("structlog")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no registered secret in any value (strings in containers too)."""
    return {key: redact_value(value) for key, value in event_dict.items()}


def _redact_line(_logger: Any, _method: str, line: Any) -> Any:
    """The console line as rendered: what a value's ``repr`` showed is covered as well."""
    return redact(line) if isinstance(line, str) else line


_minutes: dict[int, str] = {}  # minute since the epoch -> "2026-11-24T09:30:"


def iso_timestamp(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as structlog's ISO UTC stamp writes it.

    The text of ``datetime.now(timezone.utc).isoformat()`` with ``+00:00`` as ``Z``
    (microseconds, and none when they are zero), without a datetime per event: the date and
    time up to the minute are memoised, a run's events fall in a few minutes.
    """
    micros = ns // 1000
    seconds, micro = divmod(micros, 1_000_000)
    minute, second = divmod(seconds, 60)
    head = _minutes.get(minute)
    if head is None:
        if len(_minutes) > 10_000:
            _minutes.clear()
        day, rest = divmod(minute, 1440)
        date = _dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        head = _minutes[minute] = f"{date}T{rest // 60:02d}:{rest % 60:02d}:"
    if micro:
        return f"{head}{second:02d}.{micro:06d}Z"
    return f"{head}{second:02d}Z"


_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def add_timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``timestamp``, ISO 8601 UTC to the microsecond."""
    event_dict["timestamp"] = iso_timestamp(time.time_ns())
    return event_dict


def open_private(path: Path) -> TextIO:
    """Open ``path`` for appending, created with mode 0600 (logs may name the user's files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


_json_sink: TextIO | None = None


def _json_fallback(obj: Any) -> Any:
    """What structlog's JSONRenderer writes for a value JSON has no type for."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


def _line_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, default=_json_fallback)``, the same text, at less than half its cost.

    ``json.dumps`` with a ``default`` builds an encoder per call, and ``encode`` a C encoder
    per call again; this builds the C one once (without the circular-reference check, which
    keeps a set per call: an event is a flat dict of plain values). Pure Python builds (no
    ``_json``) get the ordinary encoder.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(default=_json_fallback).encode
    encode = make(None, _json_fallback, json.encoder.encode_basestring_ascii, None, ": ", ", ",
                  False, False, True)

    def render(value: Any) -> str:
        return "".join(encode(value, 0))

    return render


class _JsonFileProcessor:
    """Appends every event, as one JSON line, to the run log when one is open.

    The line is redacted as a whole, once (:func:`~runner.redact.redact_json` knows how JSON
    escapes a secret): redacting every value first as well cost more than rendering, and
    did not cover a value JSON shows through its ``repr``.
    """

    def __init__(self) -> None:
        self._encode = _line_encoder()

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        sink = _json_sink
        if sink is not None:
            sink.write(redact_json(self._encode(event_dict)) + "\n")
        return event_dict


class _ConsoleLevelFilter:
    """Drops events below the console level *after* the JSON file has seen them."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __call__(
        self, _logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if _LEVELS.get(method, logging.INFO) < self.level:
            raise structlog.DropEvent
        return event_dict


def configure(level: str = "warning", stream: TextIO | None = None) -> None:
    """Configure structlog for this process; the console shows ``level`` and above.

    Most events go to ``run.log`` only: the chain does what the JSON line needs first, and
    the console's work (structured redaction, rendering, redacting the line) only for the
    events the filter lets through.
    """
    console = structlog.PrintLogger(file=stream or sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_timestamp,
            _JsonFileProcessor(),
            _ConsoleLevelFilter(_LEVELS[level]),
            redact_processor,
            structlog.dev.ConsoleRenderer(colors=False,
                                          exception_formatter=structlog.dev.plain_traceback),
            _redact_line,
        ],
        # One console logger for every event (the factory made one per event: structlog
        # binds afresh per call while loggers are not cached).
        logger_factory=lambda *_args: console,
        cache_logger_on_first_use=False,
    )


def open_run_log(path: Path) -> None:
    """From now on, append every event as JSON to ``path`` (mode 0600) as well."""
    global _json_sink
    close_run_log()
    _json_sink = open_private(path)


def close_run_log() -> None:
    """Stop writing JSON lines to the run log."""
    global _json_sink
    if _json_sink is not None:
        _json_sink.close()
        _json_sink = None
