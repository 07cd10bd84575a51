"""``shotrun review MANIFEST [--port N] [--open]``: watch, compare and pick takes in a browser.

Serves a live contact sheet of MANIFEST on http://127.0.0.1:PORT/ (loopback only), behind a
random token printed in the URL. It reads the store as ``status`` does, so it runs beside a
live ``shotrun run`` of the same manifest and shows takes as they arrive. Picks and notes go
through the same code as ``shotrun pick``, as the store's writer for a moment; while a run
holds the store file they wait in review, the page says so, and they are saved when the run
ends. A team's store (a database) has no writer lock: picks and notes are saved at once, from
any number of review pages, while runners run.

Ctrl-C (or SIGTERM) stops it: exit 0; exit 1 when picks or notes made during a run could not
be saved before review stopped (they are printed, with the command to redo a pick); exit 2 for
a manifest that does not load or a port that cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import webbrowser
from pathlib import Path
from typing import Any

from runner.cli.flags import add_store_flag
from runner.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from runner.core.redact import redact
from runner.wire.specs import add_flag as add_provider_flag


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {value}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register ``review``."""
    parser = subparsers.add_parser(
        "review", help="a live contact sheet in the browser: watch, compare and pick "
        "takes (spends nothing)",
        description="Serve MANIFEST's takes on http://127.0.0.1:PORT/?token=... (loopback "
        "only; the random token keeps other local users out): every shot with its takes side "
        "by side, updated live while a run goes; pick a take in one click, write a note per "
        "take. Works beside `shotrun run`: while a run holds the store file, picks and notes "
        "wait and are saved when it ends (a team's database store saves them at once). "
        "Ctrl-C stops it (exit 0; 1 if picks or notes were left unsaved, listed).",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--port", type=_port, default=0, metavar="N",
                        help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")
    add_provider_flag(parser)  # the provider is in every fingerprint: as the run had it
    add_store_flag(parser)
    parser.set_defaults(func=run)


def _say(text: str, *, err: bool = False) -> None:
    print(redact(text), file=sys.stderr if err else sys.stdout, flush=True)


async def _serve(args: argparse.Namespace) -> list[str]:
    """Serve until Ctrl-C/SIGTERM; returns what could not be saved (one line each)."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.views.review.server import ReviewServer

    manifest = load_manifest(args.manifest, args.provider, sends=False)
    check_output_dir(manifest)
    server = ReviewServer(manifest)
    url = await server.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        _say(f"shotrun review: {url}")
        if not args.quiet:
            _say("open it in a browser on this machine; Ctrl-C stops", err=True)
        if args.open and not webbrowser.open(url):
            _say("shotrun: no web browser could be started; open the address above", err=True)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await server.stop()
    lost = []
    # The pick to type again must load the takes as this review did (the provider is in
    # every fingerprint): without its --provider it would find no finished take.
    provider = f" --provider {args.provider}" if args.provider else ""
    for wish in server.pending.wishes():
        redo = (f": shotrun pick {args.manifest} {wish.target} {wish.take}{provider}"
                if wish.kind == "pick" else f": {wish.text!r}" if wish.text else "")
        lost.append(f"not saved (a run still holds the store; saving it again spends "
                    f"nothing): {wish.describe()}{redo}")
    lost += [f"not saved: {failed.wish.describe()}: {failed.reason}"
             for failed in server.pending.failed]
    return lost


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun review``."""
    if sys.platform == "win32":  # pragma: no cover - add_signal_handler
        raise UsageError("shotrun review needs a POSIX system")
    lost = asyncio.run(_serve(args))
    for line in lost:
        _say(f"shotrun: warning: {line}", err=True)
    if not args.quiet:
        _say("shotrun review: stopped", err=True)
    return EXIT_FAILED if lost else EXIT_OK
