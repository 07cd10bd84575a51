"""structlog set-up: human lines on the console, JSON lines in ``run.log``, secrets redacted.

Only the CLI prints; library code logs events in snake_case (``take_submitted``) with bound
shot/take context (``structlog.contextvars.bound_contextvars``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from runner.redact import redact, redact_value


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
    """structlog processor: no registered secret leaves through a log line."""
    return {key: redact_value(value) for key, value in event_dict.items()}


def open_private(path: Path) -> TextIO:
    """Open ``path`` for appending, created with mode 0600 (logs may name the user's files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


_json_sink: TextIO | None = None


class _JsonFileProcessor:
    """Appends every event, as one JSON line, to the run log when one is open."""

    def __init__(self) -> None:
        self._render = structlog.processors.JSONRenderer()

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if _json_sink is not None:
            line = self._render(logger, method, dict(event_dict))
            assert isinstance(line, str)
            _json_sink.write(redact(line) + "\n")
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
    """Configure structlog for this process; the console shows ``level`` and above."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            _JsonFileProcessor(),
            _ConsoleLevelFilter(_LEVELS[level]),
            structlog.dev.ConsoleRenderer(colors=False,
                                          exception_formatter=structlog.dev.plain_traceback),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
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
