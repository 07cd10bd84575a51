"""``shotrun report MANIFEST [--open] [--standalone] [--csv | --csv-file PATH]``: the contact sheet.

Writes ``<output_dir>/report.html`` (one page: every take playable, with its prompt, inputs,
status and figures; its posters are in ``.shotrun/posters/`` beside it) from the state store,
read-only, so it can be made while a run is still going. ``--standalone`` writes
``<output_dir>/report-standalone.html`` instead, with the posters inlined: it can be moved or
mailed (with the video folders next to it, to play them), and says so. Not the default: a
poster is tens of kilobytes, 20,000 of them inlined would make a page of hundreds of MB,
remade at the end of every run. ``--csv`` also writes the per-take trace (the fields of
``shotrun status --json``) to ``<output_dir>/trace.csv``, ``--csv-file PATH`` to PATH.
(``--csv`` once took an optional PATH, and so swallowed a MANIFEST written after it: it is a
plain flag now.)

Exit codes: 0 written, 2 invalid manifest, unreadable state store or usage.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

from runner.cli.flags import add_store_flag
from runner.core.errors import EXIT_OK, ShotrunError, UsageError
from runner.core.fsutil import blocking_file
from runner.core.redact import redact
from runner.wire.specs import add_flag as add_provider_flag
from runner.wire.specs import other_provider_note

DEFAULT_CSV = "trace.csv"


def add_parser(subparsers: Any) -> None:
    """Register ``report`` and its options."""
    parser = subparsers.add_parser(
        "report", help="write report.html: every take playable on one page (spends nothing)",
        description="Write <output_dir>/report.html, a contact sheet of every take of MANIFEST "
        "(works offline, from file://, where it is: its posters are in .shotrun/posters/). "
        "Exit 0 written, 2 invalid manifest, unreadable state or usage.",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--open", action="store_true", help="open the report in a web browser")
    parser.add_argument("--standalone", action="store_true",
                        help="write <output_dir>/report-standalone.html instead: posters "
                        "inlined, videos referred to by paths next to it; a page that can "
                        "be moved or mailed")
    csv = parser.add_mutually_exclusive_group()
    csv.add_argument("--csv", action="store_true",
                     help=f"also write the per-take trace as CSV, to <output_dir>/{DEFAULT_CSV}")
    csv.add_argument("--csv-file", type=Path, metavar="PATH",
                     help="also write the per-take trace as CSV, to PATH")
    add_provider_flag(parser)  # the provider is in every fingerprint: as the run had it
    add_store_flag(parser)
    parser.set_defaults(func=run)


def _say(text: str, *, err: bool = False) -> None:
    print(redact(text), file=sys.stderr if err else sys.stdout, flush=True)


def _check_csv_path(path: Path) -> None:
    """A CSV path that cannot be a file (a folder, or below a file) is a usage error."""
    if path.is_dir():
        raise UsageError(f"--csv-file {path}: is a folder; give a file path such as "
                         f"{path / DEFAULT_CSV}")
    blocking = blocking_file(path.parent)
    if blocking is not None:
        raise UsageError(f"--csv-file {path}: {blocking} is a file, not a folder")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun report``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.state.location import store_at
    from runner.views.report import report_from_store, write_report
    from runner.views.report.trace import write_trace_csv
    from runner.views.status import gather

    manifest = load_manifest(args.manifest, args.provider, sends=False)  # ManifestError: 2
    check_output_dir(manifest)
    csv_path = None
    if args.csv or args.csv_file is not None:
        csv_path = args.csv_file or manifest.output_dir / DEFAULT_CSV
        _check_csv_path(csv_path)  # before anything is written
    at = store_at(manifest)
    if at.exists():
        with at.open_reader() as store:  # StateError -> exit 2
            note = other_provider_note(store.last_provider(), manifest.api.provider)
            if note is not None:
                _say(f"shotrun: warning: {note}", err=True)
            written = report_from_store(manifest, store, force=True,
                                        standalone=args.standalone)
    else:
        if not args.quiet:
            _say(f"shotrun: no run of {manifest.path} yet: every take is shown as new",
                 err=True)
        written = write_report(manifest, [], chosen={}, standalone=args.standalone)
    path = written.path
    if not args.quiet:  # -q: errors only; the exit code says it is written
        _say(f"shotrun: report of {written.describe()}: {path}")
    if csv_path is not None:
        try:
            traces = gather(args.manifest, provider=args.provider)["takes"]  # status --json's
            write_trace_csv(traces, csv_path)
        except OSError as exc:
            raise ShotrunError(f"cannot write the trace CSV {csv_path}: "
                               f"{exc.strerror or exc}; the report is written, give "
                               "--csv-file a path you can write") from None
        if not args.quiet:
            _say(f"shotrun: trace: {csv_path}")
    if args.open and not webbrowser.open(path.resolve().as_uri()):
        _say(f"shotrun: no web browser could be started; open {path.resolve().as_uri()}",
             err=True)
    return EXIT_OK
