"""``shotrun pick MANIFEST SHOT TAKE``: choose the take of a shot you keep.

The pick is recorded in the state store (with the hash of the output picked, so that a take
rendered again is not silently "still picked"). It decides which take ``export`` ships, which
tile the report marks, and which output a ``from_shot`` frame is cut from: shots that start
from this one are rendered again by the next run (reason "source changed") when the pick
changes their source. Without a pick, a shot's first finished take is its chosen one.

Exit 0 when the pick is recorded; 2 for an unknown shot, a take that is not finished, no run
yet, or a run holding the store.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from runner.errors import EXIT_OK, UsageError
from runner.redact import redact
from runner.state import StateStore, TakeStatus, store_path_for
from runner.state.continuity import frame_sources, set_pick


def add_parser(subparsers: Any) -> None:
    """Register ``pick``."""
    parser = subparsers.add_parser(
        "pick", help="choose the take of a shot to keep (export, report, from_shot)",
        description="Record TAKE as the chosen take of SHOT: `export` ships it, the report "
        "marks it, and shots that start from SHOT's frames use it (the next run re-renders "
        "them if their source changed). Exit 0 on success, 2 on a bad shot or take.",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("shot", metavar="SHOT", help="shot id (after matrix expansion)")
    parser.add_argument("take", type=int, metavar="TAKE", help="take number (1-based)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun pick``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    manifest = load_manifest(args.manifest)
    check_output_dir(manifest)
    takes = [t for t in manifest.takes if t.shot_id == args.shot]
    if not takes:
        shots = sorted({t.shot_id for t in manifest.takes})
        listed = ", ".join(shots[:10]) + (" ..." if len(shots) > 10 else "")
        raise UsageError(f"{args.manifest}: no shot {args.shot!r} (shots: {listed})")
    if not any(t.take == args.take for t in takes):
        has = "only take 1" if len(takes) == 1 else f"takes 1 to {len(takes)}"
        raise UsageError(f"{args.manifest}: shot {args.shot} has {has}, not {args.take}")
    path = store_path_for(manifest)
    if not path.is_file():
        raise UsageError(f"nothing is rendered yet for {args.manifest}: run it first "
                         "(`shotrun run MANIFEST`)")
    key = f"{args.shot}/take-{args.take}"
    fingerprints = {t.key: t.fingerprint for t in takes}
    with StateStore.open(path) as store:
        records = {r.key: r for r in store.records() if r.shot_id == args.shot}
        record = records.get(key)
        if (record is None or record.status is not TakeStatus.DONE
                or record.fingerprint != fingerprints[key]):
            state = "not recorded" if record is None else (
                "changed in the manifest since" if record.fingerprint != fingerprints[key]
                else record.status.value)
            finished = sorted(r.take for r in records.values()
                              if r.status is TakeStatus.DONE
                              and r.fingerprint == fingerprints.get(r.key))
            hint = (f"finished takes: {', '.join(map(str, finished))}" if finished
                    else "no take of it is finished yet")
            raise UsageError(f"{key} is not a finished take ({state}); {hint}")
        set_pick(store, args.shot, args.take, record.sha256)
    dependents = sorted({t.shot_id for t in manifest.takes if args.shot in frame_sources(t)})
    if args.quiet:  # -q: errors only
        return EXIT_OK
    print(redact(f"picked {args.shot} take {args.take}"))
    if dependents:
        print(redact(f"shots that start from it re-render on the next run if their source "
                     f"changed: {', '.join(dependents)}"))
    return EXIT_OK
