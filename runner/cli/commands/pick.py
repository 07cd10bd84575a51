"""``shotrun pick MANIFEST SHOT TAKE``: choose the take of a shot you keep.

The pick is recorded in the state store (with the hash of the output picked, so that a take
rendered again is not silently "still picked"). It decides which take ``export`` ships, which
tile the report marks, and which output a ``from_shot`` frame is cut from: shots that start
from this one are rendered again by the next run (reason "source changed") when the pick
changes their source. Without a pick, a shot's first finished take is its chosen one.

With a team's store (a database: ``--store``, ``SHOTRUN_STORE_URL`` or ``state.url``) the pick
is written at once, in one transaction, even while runners run: a database has no writer lock.

Exit 0 when the pick is recorded; 2 for an unknown shot, a take that is not finished, no run
yet, or a run holding the embedded store file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from runner.cli.flags import add_store_flag
from runner.core.errors import EXIT_OK
from runner.core.redact import redact
from runner.wire.specs import add_flag as add_provider_flag


def add_parser(subparsers: Any) -> None:
    """Register ``pick``."""
    parser = subparsers.add_parser(
        "pick", help="choose the take of a shot to keep (spends nothing)",
        description="Record TAKE as the chosen take of SHOT: `export` ships it, the report "
        "marks it, and shots that start from SHOT's frames use it (the next run re-renders "
        "them if their source changed). Exit 0 on success, 2 on a bad shot or take, or "
        "while a run holds the store file (`shotrun review` keeps a pick until the run "
        "ends); a team's database store takes it at once, runners or not.",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("shot", metavar="SHOT", help="shot id (after matrix expansion)")
    parser.add_argument("take", type=int, metavar="TAKE", help="take number (1-based)")
    add_provider_flag(parser)  # the provider is in every fingerprint: as the run had it
    add_store_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun pick``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.state.choices import pick_take

    manifest = load_manifest(args.manifest, args.provider, sends=False)
    check_output_dir(manifest)
    picked = pick_take(manifest, args.shot, args.take)  # the same code as shotrun review's
    if args.quiet:  # -q: errors only
        return EXIT_OK
    print(redact(f"picked {args.shot} take {args.take}"))
    if picked.dependents:
        print(redact(f"shots that start from it re-render on the next run if their source "
                     f"changed: {', '.join(picked.dependents)} (new tasks, paid: `shotrun "
                     "plan` shows the cost and sends nothing)"))
    return EXIT_OK
