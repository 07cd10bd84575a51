"""structlog set-up: human lines on the console, JSON lines in ``run.log``, secrets redacted.

Only the CLI prints; library code logs events in snake_case (``take_submitted``) with bound
shot/take context (``structlog.contextvars.bound_contextvars``).

Logging is configured (warnings and above, on stderr) as soon as anything of shotrun is
imported (``runner/__init__.py`` imports this module), not only when ``cli.main`` parses its
arguments: structlog unconfigured prints every event, debug ones too, to *stdout*, where a
command's own output goes (``status --json``, ``schema``). Code that ran before the command
did (an emulator a test or a script starts in the same process, then ``cli.main``) put
``[debug] emulator_listening ...`` in front of the command's output.
"""

from __future__ import annotations

import importlib
import json
import json.encoder
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from runner.core.isotime import iso_timestamp
from runner.core.redact import QUOTE_LIMIT, clip, redact, redact_json, redact_value


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


#: The longest line the run log or the console is given; an event rendered longer has its
#: long texts cut (:func:`clipped_values`).
LINE_LIMIT = 1000


def clipped_values(event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """The event with every long text cut to :data:`~runner.core.redact.QUOTE_LIMIT` (redacted
    first, so no secret is cut in two): what a server or a library said stays a quotation."""
    return {key: clip(redact(value)) if isinstance(value, str) and len(value) > QUOTE_LIMIT
            else clip(redact(repr(value))) if isinstance(value, list | tuple | dict)
            and len(repr(value)) > QUOTE_LIMIT else value
            for key, value in event_dict.items()}


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no registered secret in any value (strings in containers too),
    and no value longer than a quotation."""
    return clipped_values({key: redact_value(value) for key, value in event_dict.items()})


def _redact_line(_logger: Any, _method: str, line: Any) -> Any:
    """The console line as rendered: what a value's ``repr`` showed is covered as well."""
    return redact(line) if isinstance(line, str) else line


def add_timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``timestamp``, ISO 8601 UTC to the microsecond."""
    event_dict["timestamp"] = iso_timestamp(time.time_ns())
    return event_dict


_bound: dict[str, Any] | None = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
_PREFIX_LEN = len(getattr(structlog.contextvars, "STRUCTLOG_KEY_PREFIX", "structlog_"))


def merge_contextvars(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog's ``merge_contextvars``, reading only the variables structlog made.

    structlog's own copies the whole context and walks every variable in it (asyncio's and
    aiohttp's too) to find its own by name; it keeps them in a dict, read here (a private
    name: should a structlog release drop it, its own processor is used, the same result).
    """
    if _bound is None:
        return structlog.contextvars.merge_contextvars(logger, method, event_dict)
    for name, var in tuple(_bound.items()):
        value = var.get()
        if value is not Ellipsis:
            event_dict.setdefault(name[_PREFIX_LEN:], value)
    return event_dict


_json_fd: int | None = None  # the open run log (appended to with os.write: see _append)


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

    The line is redacted as a whole, once (:func:`~runner.core.redact.redact_json` knows how JSON
    escapes a secret): redacting every value first as well cost more than rendering, and
    did not cover a value JSON shows through its ``repr``.
    """

    def __init__(self) -> None:
        self._encode = _line_encoder()

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        fd = _json_fd
        if fd is not None:
            line = self._encode(event_dict)
            if len(line) > LINE_LIMIT:  # rare: only then is each value looked at
                line = self._encode(clipped_values(event_dict))
            _append(fd, (redact_json(line) + "\n").encode())
        return event_dict


def _append(fd: int, data: bytes) -> None:
    """Write ``data`` (one line) to the end of the run log, now.

    One ``os.write`` to a file opened with ``O_APPEND``: the line is in the file as soon as
    the event is logged (as a line-buffered text file did, at twice the cost), and a line
    from another thread is never interleaved with it. A short write (a full disk) goes on
    with the rest, and an error is raised as the text file raised it.
    """
    written = os.write(fd, data)
    while written < len(data):
        data = data[written:]
        written = os.write(fd, data)


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


class _Console:
    """structlog's console end: each rendered line to the stream the console is now.

    The stream can change while loggers are cached (``shotrun run``'s live panel puts a
    proxy in place of stderr; tests swap stderr): :func:`redirect_console` changes it for
    every logger at once.
    """

    def __init__(self) -> None:
        self.stream: TextIO = sys.stderr
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            print(message, file=self.stream, flush=True)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


_console = _Console()
# The processor chain, one list for the life of the process: loggers are cached on first use
# and keep the list they found, so configure() changes it in place (structlog's own
# ``capture_logs`` does the same).
_processors: list[Any] = []


def _console_factory(*_args: Any) -> _Console:
    return _console


def configure(level: str = "warning", stream: TextIO | None = None) -> None:
    """Configure structlog for this process; the console shows ``level`` and above.

    Most events go to ``run.log`` only: the chain does what the JSON line needs first, and
    the console's work (structured redaction, rendering, redacting the line) only for the
    events the filter lets through. Loggers are cached on first use (structlog otherwise
    builds a bound logger for every event); what may change later (the level, the console
    stream) is changed in place. Change the console's stream with :func:`redirect_console`,
    not with ``structlog.configure``.
    """
    _console.stream = stream or sys.stderr
    _processors[:] = [
        merge_contextvars,
        structlog.processors.add_log_level,
        add_timestamp,
        _JsonFileProcessor(),
        _ConsoleLevelFilter(_LEVELS[level]),
        redact_processor,
        structlog.dev.ConsoleRenderer(colors=False,
                                      exception_formatter=structlog.dev.plain_traceback),
        _redact_line,
    ]
    structlog.configure(processors=_processors, logger_factory=_console_factory,
                        cache_logger_on_first_use=True)


def redirect_console(stream: TextIO) -> TextIO:
    """Send console lines to ``stream`` from now on; returns the stream they went to."""
    previous, _console.stream = _console.stream, stream
    return previous


def open_run_log(path: Path) -> None:
    """From now on, append every event as JSON to ``path`` (mode 0600) as well."""
    global _json_fd
    close_run_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    _json_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def close_run_log() -> None:
    """Stop writing JSON lines to the run log."""
    global _json_fd
    fd, _json_fd = _json_fd, None
    if fd is not None:
        os.close(fd)


# Before anything can log (see the module's docstring); a program that configured structlog
# itself before importing shotrun keeps its own set-up until a command configures it.
if not structlog.is_configured():
    configure()
