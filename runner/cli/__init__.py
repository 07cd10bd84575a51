"""cli (the room that prints): The ``shotrun`` command line: parses arguments, dispatches to
``runner.cli.commands.*``.

Each module in :mod:`runner.cli.commands` is one subcommand and defines
``add_parser(subparsers) -> None`` (which sets ``func``) and a ``run(args) -> int``.
Commands are discovered, so adding one is adding a module.

Exit codes (also in the README): 0 all done, 1 some takes failed, 2 invalid manifest or usage,
3 unexpected error (the crash log's path is printed), 4 the state store stopped recording
mid-way (disk full, read-only, gone), 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from runner import __version__
from runner.core import log
from runner.core.errors import (
    EXIT_CRASH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STORE,
    EXIT_USAGE,
    ManifestError,
    ShotrunError,
    StateError,
    StoreWriteFailed,
    UsageError,
)
from runner.core.redact import redact


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` stays in charge of exit codes."""

    def error(self, message: str) -> Any:
        # "shotrun: error: " is added by ``exit_codes``: name only the command after it.
        command = self.prog.removeprefix("shotrun").strip()
        hint = f"; see `{self.prog} --help`"
        raise UsageError(f"{command}: {message}{hint}" if command else f"{message}{hint}")


def _command_named(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` asks for, when it is one (the global options take no values)."""
    import runner.cli.commands as commands_pkg

    word = next((arg for arg in argv if not arg.startswith("-")), None)
    names = {info.name for info in pkgutil.iter_modules(commands_pkg.__path__)}
    return word if word in names and not word.startswith("_") else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser, with one subparser per module of :mod:`runner.cli.commands`.

    ``only`` registers just that command (none for ``""``): importing every command's module
    (PyAV, numpy, aiohttp's server...) cost about half a second per invocation, which
    ``shotrun status`` on a big manifest cannot afford (target: under a second).
    ``shotrun --help`` and ``shotrun completion`` register every command, so a command
    module imports at its top only what its parser needs, and its heavy libraries inside
    the functions that use them (``tests/cli/test_startup.py`` checks it).
    """
    parser = _Parser(
        prog="shotrun",
        description="Declarative batch runner for Kling O3 reference-to-video shot lists.",
        epilog="Exit codes: 0 done, 1 some takes failed, 2 invalid manifest or usage, "
        "3 unexpected error, 4 the state store could not record (disk full?), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"shotrun {__version__}")
    _add_verbosity(parser, default_verbose=0, default_quiet=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import runner.cli.commands as commands_pkg

    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or (only is not None and info.name != only):
            continue
        module = importlib.import_module(f"runner.cli.commands.{info.name}")
        module.add_parser(subparsers)
    for command in subparsers.choices.values():
        # `shotrun validate x.yaml -v` as well as `shotrun -v validate x.yaml`, as git, gh
        # and docker users expect. SUPPRESS: a subcommand not given the flag leaves the value
        # set before the command alone (argparse copies every sub-namespace attribute over).
        _add_verbosity(command, default_verbose=argparse.SUPPRESS,
                       default_quiet=argparse.SUPPRESS)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, *, default_verbose: Any,
                   default_quiet: Any) -> None:
    """``-v``/``-vv`` and ``-q``, on the main parser and (again) on every command's."""
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=default_verbose,
                           help="log more (-v info, -vv debug) on stderr")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=default_quiet,
                           help="print only errors and warnings")


def write_crash_log(exc: BaseException) -> Path | None:
    """Save the traceback (redacted, mode 0600) and return where; None if it cannot be saved."""
    text = redact("".join(traceback.format_exception(exc)))
    from runner.core.fsutil import user_cache_dir  # on the crash path, not at start-up

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        directory = user_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"crash-{stamp}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path
    except OSError:
        return None


def _eprint(text: str) -> None:
    print(redact(text), file=sys.stderr)


@contextmanager
def exit_codes(result: list[int]) -> Iterator[None]:
    """Map every exception to a message on stderr and a documented exit code in ``result``."""
    try:
        yield
    except ManifestError as exc:
        for problem in exc.problems:
            _eprint(str(problem))
        result.append(EXIT_USAGE)
    except StoreWriteFailed as exc:  # before StateError: under way, not "nothing was sent"
        _eprint(f"shotrun: error: {exc}; stopped here, every step recorded before is kept")
        result.append(EXIT_STORE)
    except (UsageError, StateError) as exc:
        _eprint(f"shotrun: error: {exc}")
        result.append(EXIT_USAGE)
    except ShotrunError as exc:
        _eprint(f"shotrun: error: {exc}")
        result.append(EXIT_FAILED)
    except KeyboardInterrupt:
        _eprint("shotrun: interrupted")
        result.append(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader of the output went away (`shotrun probe ... | head -1`): nothing to say
        # to it, and no crash. Point stdout at nothing so that the exit's flush is quiet.
        with suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        result.append(EXIT_FAILED)
    except Exception as exc:
        path = write_crash_log(exc)
        where = f"; the traceback is in {path}" if path else ""
        _eprint(f"shotrun: unexpected error: {type(exc).__name__}: {exc}{where}")
        _eprint("Please report it with the crash log (it contains no API key).")
        result.append(EXIT_CRASH)


def _hide_url_passwords(words: Sequence[str]) -> None:
    """Register the password of any URL on the command line (``--store``) as a secret."""
    from runner.core.redact import register_secret
    from runner.core.storeurl import url_passwords

    for word in words:
        if "://" in word:
            for password in url_passwords(word.split("=", 1)[-1] if word.startswith("--")
                                          else word):
                register_secret(password)


def use_store_flag(args: argparse.Namespace) -> None:
    """``--store URL`` (on the commands that read or write a store) stands for
    ``SHOTRUN_STORE_URL`` in this process: the flag before the environment before the
    manifest, decided in one place (:func:`runner.state.location.store_at`). The URL is
    checked here, naming --store; its password was registered as a secret before parsing
    (:func:`_hide_url_passwords`)."""
    url = getattr(args, "store", None)
    if url is not None:
        from runner.core.storeurl import ENV_STORE_URL, store_url, url_passwords

        store_url(url, {}, None)  # a URL of another kind: exit 2, naming --store
        if url_passwords(url):
            print("shotrun: warning: the password in --store shows in the process list and "
                  "the shell's history; put it in PGPASSWORD or ~/.pgpass instead",
                  file=sys.stderr)
        os.environ[ENV_STORE_URL] = url


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``shotrun`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    result: list[int] = []
    with exit_codes(result):
        words = list(sys.argv[1:] if argv is None else argv)
        only = _command_named(words)
        if only is None and "--version" in words:
            only = ""  # no command module is needed to print the version
        parser = build_parser(only)
        _hide_url_passwords(words)  # before argparse may quote a word in an error
        args = parser.parse_args(words)
        level = "error" if args.quiet else ("debug" if args.verbose >= 2 else
                                            "info" if args.verbose == 1 else "warning")
        log.configure(level)
        use_store_flag(args)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        result.append(func(args))
    return result[-1] if result else EXIT_CRASH


def console_main() -> None:
    """Entry point of the ``shotrun`` console script (and ``python -m runner``)."""
    from runner.core.bulk import mark_command_process

    mark_command_process()  # keeps what it loads until it exits: see runner.core.bulk
    sys.exit(main())
