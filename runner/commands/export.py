"""``shotrun export MANIFEST DIR [--link] [--strict]``: the sequence, ready for an editor.

Copies (or, with ``--link``, hard-links) the chosen take of every shot - the picked one, else
the first finished - into DIR as ``<nn>-<shot-id>.mp4`` in manifest order, and writes
``edit.csv`` and ``edit.edl`` (CMX3600-style, 24 fps) so the clips drop onto a timeline in
order. Reads the store read-only: it works beside a running render.

A shot with no finished take is skipped with a warning (its number is left out), or, with
``--strict``, nothing is exported and the command exits 1. Files already in DIR that this
export does not write (clips of shots since renamed, say) are left alone, with a warning that
counts them. Exit 0 on success, 2 on usage errors (no run yet, an unwritable folder or a file
named DIR, ``--link`` across file systems).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner.errors import EXIT_FAILED, EXIT_OK, UsageError
from runner.export import ExportError, export, others, select
from runner.redact import redact
from runner.state import StateStore, store_path_for
from runner.state.continuity import picks
from runner.words import count, listed, plural


def add_parser(subparsers: Any) -> None:
    """Register ``export``."""
    parser = subparsers.add_parser(
        "export", help="copy the chosen take of every shot, in order, with an edit list",
        description="Copy (or hard-link) the chosen take of every shot into DIR as "
        "<nn>-<shot-id>.mp4, in manifest order, with edit.csv and edit.edl (24 fps). Exit 0 "
        "on success, 1 with --strict when a shot has no finished take, 2 on usage errors.",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("dir", type=Path, metavar="DIR")
    parser.add_argument("--link", action="store_true",
                        help="hard-link instead of copying (DIR on the same file system)")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1, nothing written) when a shot has no finished take")
    parser.set_defaults(func=run)


def _err(text: str) -> None:
    print(redact(text), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun export``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    manifest = load_manifest(args.manifest)
    check_output_dir(manifest)
    path = store_path_for(manifest)
    if not path.is_file():
        raise UsageError(f"nothing is rendered yet for {args.manifest}: run it first "
                         "(`shotrun run MANIFEST`)")
    with StateStore.open_readonly(path) as store:
        selection = select(manifest, store.records(), picks(store))
    if selection.missing:
        missing = ", ".join(selection.missing)
        if args.strict:
            _err(f"shotrun: error: no finished take for: {missing}; nothing exported "
                 "(render them, or drop --strict to skip them)")
            return EXIT_FAILED
        _err(f"shotrun: warning: no finished take for: {missing}; skipped")
    try:
        export(manifest, selection, args.dir, link=args.link)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    stale = others(args.dir, selection)
    if stale:  # the user's files: named, never deleted
        _err(f"shotrun: warning: {args.dir} also holds {count(len(stale), 'file')} that "
             f"{plural(len(stale), 'is')} not part of this export ({listed(stale, 3)}); "
             "edit.csv and edit.edl list only the clips written now: remove them, or export "
             "into an empty folder")
    if args.quiet:  # -q: warnings and errors only
        return EXIT_OK
    for clip in selection.clips:
        mark = " (picked)" if clip.picked else ""
        print(redact(f"{clip.name}  <- {clip.shot_id} take {clip.take}{mark}"))
    print(redact(f"{count(len(selection.clips), 'clip')} and edit.csv, edit.edl in {args.dir}"))
    return EXIT_OK
