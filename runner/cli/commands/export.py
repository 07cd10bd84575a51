"""``shotrun export MANIFEST DIR [--format LIST] [--link] [--strict]``: the edit, for an NLE.

Copies (or, with ``--link``, hard-links) the chosen take of every shot - the picked one, else
the first finished - into DIR as ``<nn>-<shot-id>.mp4`` in manifest order, and writes the edit
as an OpenTimelineIO timeline in the formats asked for (default: every one installed):
``edit.otio``, ``edit.edl`` (CMX 3600), ``edit.xml`` (Final Cut Pro 7 XML, which Premiere and
Resolve import) and ``edit.csv``. Shots with no finished take are gaps of their requested
length. Reads the store read-only: it works beside a running render.

A shot with no finished take is a gap, with a warning, or, with ``--strict``, nothing is
exported and the command exits 1. Files already in DIR that this export does not write (clips
of shots since renamed, say) are left alone, with a warning that counts them. Exit 0 on
success, 2 on usage errors (no run yet, an unknown format or one whose adapter is not
installed, an unwritable folder or a file named DIR, ``--link`` across file systems): then
nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner.cli.flags import add_store_flag
from runner.core import advice
from runner.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from runner.core.redact import redact
from runner.core.words import count, listed, plural
from runner.wire.specs import add_flag as add_provider_flag
from runner.wire.specs import other_provider_note, register_environment_secrets

# runner.views.export.FORMATS' names, written out: that module brings OpenTimelineIO, which
# `shotrun --help` would pay for at start-up (tests/cli/test_startup.py checks they agree).
FORMAT_NAMES = "otio,edl,fcpxml,csv"


def add_parser(subparsers: Any) -> None:
    """Register ``export``."""
    parser = subparsers.add_parser(
        "export", help="copy the chosen take of every shot, in order, with the edit for an "
        "NLE (spends nothing)",
        description="Copy (or hard-link) the chosen take of every shot into DIR as "
        "<nn>-<shot-id>.mp4, in manifest order, with the edit as edit.otio (OpenTimelineIO), "
        "edit.edl (CMX 3600), edit.xml (Final Cut Pro 7 XML: Premiere, Resolve) and edit.csv. "
        "Exit 0 on success, 1 with --strict when a shot has no finished take, 2 on usage "
        "errors.",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("dir", type=Path, metavar="DIR")
    parser.add_argument("--format", metavar="LIST", default=None,
                        help=f"edit lists to write, comma-separated, of {FORMAT_NAMES} "
                        "(default: every one whose adapter is installed)")
    parser.add_argument("--link", action="store_true",
                        help="hard-link instead of copying (DIR on the same file system)")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1, nothing written) when a shot has no finished take")
    add_provider_flag(parser)  # the provider is in every fingerprint: as the run had it
    add_store_flag(parser)
    parser.set_defaults(func=run)


def _err(text: str) -> None:
    print(redact(text), file=sys.stderr, flush=True)


def _names(files: list[str]) -> str:
    """``edit.csv, edit.edl and edit.otio``."""
    return files[0] if len(files) == 1 else f"{', '.join(files[:-1])} and {files[-1]}"


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun export``."""
    # Here, not at the top, for start-up speed: OpenTimelineIO, PyAV, the store.
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.state.location import store_at
    from runner.views.export import ExportError, choose_formats, export, others, select

    manifest = load_manifest(args.manifest, args.provider, sends=False)
    check_output_dir(manifest)
    # The key is never in the store, but a prompt could hold it: what is written is redacted.
    register_environment_secrets(manifest)
    try:
        formats = choose_formats(args.format)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    at = store_at(manifest)
    if not at.exists():
        raise UsageError(f"nothing is rendered yet for {args.manifest}: run it first "
                         f"(`shotrun run MANIFEST`, {advice.FIRST_RUN})")
    with at.open_reader() as store:
        note = other_provider_note(store.last_provider(), manifest.api.provider)
        selection = select(manifest, store.records(), store.picks(), store.frame_hashes())
    if note is not None:
        _err(f"shotrun: warning: {note}")
    if selection.missing:
        missing = ", ".join(selection.missing)
        if args.strict:
            _err(f"shotrun: error: no finished take for: {missing}; nothing exported "
                 "(render them, or drop --strict to skip them)")
            return EXIT_FAILED
        gaps = plural(len(selection.missing), "a gap", "gaps")
        _err(f"shotrun: warning: no finished take for: {missing}; skipped, left as {gaps} "
             "on the timeline")
    try:
        done = export(manifest.name, selection, args.dir, formats, link=args.link)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    lists = sorted(done.lists)
    stale = others(args.dir, selection, lists)
    if stale:  # the user's files: named, never deleted
        _err(f"shotrun: warning: {args.dir} also holds {count(len(stale), 'file')} that "
             f"{plural(len(stale), 'is')} not part of this export ({listed(stale, 3)}); "
             f"{_names(lists)} {plural(len(lists), 'lists', 'list')} only the clips written "
             "now: remove them, or export into an empty folder")
    if args.quiet:  # -q: warnings and errors only
        return EXIT_OK
    for clip in done.clips:
        mark = " (picked)" if clip.chosen.picked else ""
        print(redact(f"{clip.chosen.name}  <- {clip.chosen.shot_id} take "
                     f"{clip.chosen.record.take}{mark}"))
    print(redact(f"{count(len(done.clips), 'clip')} and {_names(lists)} in {args.dir} "
                 f"({done.rate:g} fps)"))
    return EXIT_OK
