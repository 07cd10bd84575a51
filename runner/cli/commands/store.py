"""``shotrun store rebuild MANIFEST``: a damaged state store rebuilt from the output folder;
``shotrun store copy FROM TO``: a store moved between SQLite and PostgreSQL.

The store is one file; the output folder keeps a second copy of what matters for money (a
sidecar beside each video, a journal of the creations in flight: :mod:`runner.state.rebuild`).
A run rebuilds a missing or empty store by itself; a damaged one (not SQLite, corrupt, failing
its check) is refused, because it may hold what the folder does not (failures, picks,
notes). This command sets the damaged file aside (``state.sqlite.damaged-<stamp>``, kept)
and rebuilds: done takes adopted (their hash checked), tasks whose id is known collected by
the next run, creations left unanswered counted ambiguous. It sends nothing and spends
nothing; the next run creates only what was never paid for.

Exit 0 when rebuilt; 2 for a bad manifest, a run holding the store, or a store that is not
damaged (``--force`` rebuilds it anyway). A team's store is a database (``--store``,
``SHOTRUN_STORE_URL``, ``state.url``): there is no file to set aside, PostgreSQL keeps its own
data whole, so ``rebuild`` refuses it (exit 2) rather than rebuild the file nobody uses.

``store copy`` copies every take, the budget's ledger, the events, picks and notes of one
store into another that holds none (:mod:`runner.state.copy`): a team's database started from
one person's solo folder, or a solo folder from the team's database. It spends nothing. Exit
0 when copied; 2 for a target holding takes, a source holding none, a source in use, the
same store twice, a bad manifest or a database that cannot be opened.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from runner.cli.flags import add_store_flag
from runner.cli.run_store import SPENDS
from runner.core.errors import EXIT_OK
from runner.core.redact import redact


def add_parser(subparsers: Any) -> None:
    """Register ``store`` and its ``rebuild`` and ``copy`` actions."""
    parser = subparsers.add_parser(
        "store", help="look after the state store: `store rebuild`, `store copy` (each "
        "spends nothing)",
        description="Look after the state store (<output_dir>/.shotrun/state.sqlite).",
    )
    actions = parser.add_subparsers(dest="store_action", metavar="ACTION", required=True,
                                    parser_class=type(parser))
    rebuild = actions.add_parser(
        "rebuild", help=f"rebuild a damaged store from the output folder ({SPENDS})",
        description="Set a damaged state store aside (kept as state.sqlite.damaged-<stamp>) "
        "and rebuild it from the output folder: each take whose video is there with the "
        "hash its sidecar records is done; a take whose task id is recorded is collected by "
        "the next run, not created; a creation whose answer never came is counted ambiguous. "
        f"This command {SPENDS}. Failures, picks and notes are not in the folder: they "
        "start afresh. A missing or empty store needs no command: `shotrun run` rebuilds "
        "it. Exit 0 rebuilt, 2 bad manifest, a run holding the store, or a store that is "
        "not damaged.",
    )
    rebuild.add_argument("manifest", type=Path, metavar="MANIFEST")
    rebuild.add_argument("--force", action="store_true",
                         help="rebuild a store that is not damaged too (it is kept as "
                         "state.sqlite.replaced-<stamp>); failures, picks and notes are lost")
    add_store_flag(rebuild)  # only to refuse a database: rebuild is for the embedded file
    rebuild.set_defaults(func=run)
    copy = actions.add_parser(
        "copy", help=f"copy a store between SQLite and PostgreSQL ({SPENDS})",
        description="Copy a whole state store into another: every take (done, in flight "
        "with its task id, failed), the budget's ledger, the event log, picks and notes, "
        "so that runs on the copy collect what is in flight and create only takes never "
        "paid for. The team's live coordination (runners, claims, seats) is not copied. "
        "FROM and TO are each a PostgreSQL URL (postgresql://USER@HOST:PORT/DBNAME, the "
        "password in PGPASSWORD or ~/.pgpass), a store file (<output_dir>/.shotrun/"
        "state.sqlite) or a manifest (.yaml/.yml: its output folder's store file, whatever "
        "state.url or SHOTRUN_STORE_URL say; created when missing). The copy is one "
        "transaction: it refuses, writing nothing, a TO that already holds takes, a FROM "
        "that holds none, a FROM a run is writing (a run's lock on the file; runners with a "
        "live lease in the database), and FROM and TO being the same store. "
        f"This command {SPENDS}. Exit 0 copied, 2 refused (or a bad manifest, or "
        "a database that cannot be opened).",
    )
    copy.add_argument("source", metavar="FROM",
                      help="the store to copy: a postgresql:// URL, a store file or a manifest")
    copy.add_argument("target", metavar="TO",
                      help="where to copy it (holding no takes): a postgresql:// URL, a "
                      "store file or a manifest")
    copy.set_defaults(func=run_copy)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun store rebuild``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.state.location import store_at
    from runner.state.rebuild import rebuild_damaged

    manifest = load_manifest(args.manifest, sends=False)
    check_output_dir(manifest)
    at = store_at(manifest)
    at.refuse_shared("store rebuild")
    path = at.path
    kept, rebuilt = rebuild_damaged(path, manifest.output_dir, force=args.force)
    if args.quiet:
        return EXIT_OK
    where = f"; the old store is kept as {kept}" if kept else ""
    print(redact(f"rebuilt {path} from the output folder: {rebuilt.describe()}{where}"))
    print(f"nothing was sent and nothing spent; `shotrun run {shlex.quote(str(args.manifest))}`"
          " collects what is in flight and creates only takes never paid for (it spends)",
          file=sys.stdout)
    return EXIT_OK


def _place(text: str) -> Path | str:
    """A store's place as the user gave it: a PostgreSQL URL as it is, a manifest as its
    output folder's store file, anything else as a store file's path."""
    from runner.core.errors import UsageError
    from runner.core.storeurl import is_postgres_url, redact_url

    if is_postgres_url(text):
        return text
    if "://" in text:
        raise UsageError(f"{redact_url(text)!r} is not a PostgreSQL URL: give "
                         "postgresql://USER@HOST:PORT/DBNAME, a store file or a manifest")
    path = Path(text)
    if path.suffix.lower() not in (".yaml", ".yml"):
        return path
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.state import store_path_for

    manifest = load_manifest(path, sends=False)
    check_output_dir(manifest)
    return store_path_for(manifest)


def run_copy(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun store copy``."""
    from runner.state.copy import copy_store

    copied = copy_store(_place(args.source), _place(args.target))
    if args.quiet:
        return EXIT_OK
    print(redact(f"copied {copied.source} to {copied.target}: {copied.describe()}"))
    print(redact(f"nothing was sent and nothing spent; a run on {copied.target} collects "
                 "what is in flight and creates only takes never paid for (a run spends)"))
    return EXIT_OK
