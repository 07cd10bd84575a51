"""``shotrun gc MANIFEST [--dry-run]``: remove kept renders no take of the manifest can use.

Every verified render is kept under ``<shot>/history/`` by its fingerprint, so that an undone
edit or a provider switched back restores it for free (:mod:`runner.state.kept`). Over time some of
them can never come back: ``gc`` lists those files with their sizes and removes them.

Reachable (never removed), chosen so that nothing a run could restore is lost:

* a kept render whose fingerprint is the current fingerprint of its take, as the manifest is
  now and for the provider in use (``--provider``, else ``SHOTRUN_PROVIDER``, else
  ``api.provider``); renders of another provider are *not* kept (run ``gc`` with that
  provider's ``--provider`` first to see what it would keep);
* any file whose hash a pick or a note of the state store names;
* current outputs (``<shot>/take-<n>.mp4`` and their sidecars), rejected downloads and
  everything outside ``history/`` folders: ``gc`` only ever looks inside those.

Files in a history folder without a sidecar naming a fingerprint (an unnamed output moved
aside, a done file found changed on disk) can never be restored, so they count as
unreachable. ``gc`` never contacts a provider and never spends. It takes the store's lock:
it refuses to run beside a run of the same manifest.

With a team's store (a database: ``--store``, ``SHOTRUN_STORE_URL``, ``state.url``) ``gc`` only
reads it (the picks and notes that protect files; it writes nothing there), so it needs no
writer. What the file's lock gave, no run restoring a kept render while gc removes files, a
database gives by its runners' leases: ``gc`` refuses (exit 2) while any runner of the team is
live, naming how many, and works once they are done.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.cli.flags import add_store_flag
from runner.core.errors import EXIT_OK, UsageError
from runner.core.redact import redact
from runner.core.words import count, plural
from runner.state import Store
from runner.state.location import StoreAt, store_at
from runner.state.outputs import HISTORY_DIR, read_sidecar
from runner.wire.specs import add_flag as add_provider_flag

_TAKE_FILE = re.compile(r"take-(\d+)(?:\.mp4|\.json|\.mp4\.part)")


@dataclass(frozen=True, slots=True)
class Unreachable:
    """One file ``gc`` removes, and why no take can use it."""

    path: Path
    size: int


def add_parser(subparsers: Any) -> None:
    """Register ``gc``."""
    parser = subparsers.add_parser(
        "gc", help="remove kept renders no take of the manifest can use (spends nothing)",
        description="List and remove the files under <shot>/history/ that no take of the "
        "manifest can restore any more, with the bytes freed. Kept: renders of each take's "
        "current fingerprint for the provider in use (--provider, else SHOTRUN_PROVIDER, "
        "else api.provider; renders of other providers are removed), files a pick or a "
        "note names, and every current output. Contacts no provider and never spends. "
        "Exit 0 when done, 2 on bad input or while a run holds the store (a team's "
        "database store: while a runner works on it).",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be removed and the bytes it would free; "
                        "remove nothing")
    add_provider_flag(parser)  # the provider is in every fingerprint
    add_store_flag(parser)
    parser.set_defaults(func=run)


def unreachable_files(output_dir: Path, fingerprints: dict[tuple[str, int], str],
                      protected: set[str]) -> list[Unreachable]:
    """The files of ``<output_dir>/<shot>/history/*/`` no take can restore, sorted.

    ``fingerprints``: each take's current fingerprint by (shot id, take number);
    ``protected``: hashes a pick or a note names.
    """
    found: list[Unreachable] = []
    try:
        shots = sorted((entry for entry in os.scandir(output_dir)
                       if entry.is_dir(follow_symlinks=False) and entry.name != ".shotrun"),
                       key=lambda entry: entry.name)
    except OSError:
        return found
    for shot in shots:
        history = Path(shot.path) / HISTORY_DIR
        try:
            folders = sorted((entry for entry in os.scandir(history)
                              if entry.is_dir(follow_symlinks=False)),
                             key=lambda entry: entry.name)
        except OSError:
            continue
        for folder in folders:
            with os.scandir(folder.path) as entries:
                files = sorted((entry for entry in entries if entry.is_file(follow_symlinks=False)),
                               key=lambda entry: entry.name)
            for entry in files:
                path = Path(entry.path)
                if not _reachable(path, shot.name, fingerprints, protected):
                    found.append(Unreachable(path, entry.stat(follow_symlinks=False).st_size))
    return found


def _reachable(path: Path, shot_id: str, fingerprints: dict[tuple[str, int], str],
               protected: set[str]) -> bool:
    """Whether a file of a history folder belongs to a render some take can use."""
    match = _TAKE_FILE.fullmatch(path.name)
    if match is None:
        return False
    data = read_sidecar(path.with_name(f"take-{match.group(1)}.mp4"))
    if not data:
        return False
    if data.get("sha256") in protected:
        return True
    wanted = fingerprints.get((shot_id, int(match.group(1))))
    return wanted is not None and data.get("fingerprint") == wanted


def _protected_hashes(store: Store) -> set[str]:
    hashes = {pick.sha256 for pick in store.picks().values() if pick.sha256}
    hashes.update(note.sha256 for note in store.notes().values() if note.sha256)
    return hashes


def _refuse_beside_runners(at: StoreAt, store: Store) -> None:
    """A :class:`UsageError` while runners of the team's store are live (a run may restore
    a kept render gc would remove): the database's stand-in for the file's writer lock."""
    from runner.state.roster import live_runners  # psycopg: only for a database

    runners = live_runners(store)
    if runners:
        raise UsageError(f"gc: {count(len(runners), 'runner')} {plural(len(runners), 'is')} "
                         f"working on the store {at.where}: run gc when they are done "
                         "(`shotrun status` shows who); nothing was removed")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun gc``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    manifest = load_manifest(args.manifest, args.provider, sends=False)
    check_output_dir(manifest)
    fingerprints = {(take.shot_id, take.take): take.fingerprint for take in manifest.takes}
    at = store_at(manifest)
    with contextlib.ExitStack() as stack:
        protected: set[str] = set()
        if at.shared:  # read only; no runner may be restoring a file while gc removes it
            store = stack.enter_context(at.open_reader())
            _refuse_beside_runners(at, store)
            protected = _protected_hashes(store)
        elif at.exists():  # its lock: no run restores a file while gc removes it
            store = stack.enter_context(at.open_writer())
            protected = _protected_hashes(store)
        doomed = unreachable_files(manifest.output_dir, fingerprints, protected)
        freed = 0
        for item in doomed:
            shown = item.path.relative_to(manifest.output_dir)
            if not args.dry_run:
                try:
                    item.path.unlink()
                except FileNotFoundError:
                    continue
            freed += item.size
            if not args.quiet:
                print(redact(f"  {shown}  {item.size} bytes"))
        if not args.dry_run:
            _remove_empty_folders({item.path.parent for item in doomed})
    verb = "would free" if args.dry_run else "freed"
    tail = " (dry run: nothing removed)" if args.dry_run else ""
    if not args.quiet:
        print(f"gc: {count(len(doomed), 'file')}, {verb} {freed} bytes{tail}; "
              "nothing was sent or spent")
    return EXIT_OK


def _remove_empty_folders(folders: set[Path]) -> None:
    """Remove emptied history folders (and an emptied ``history/``); full ones stay."""
    for folder in sorted(folders, reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
            folder.parent.rmdir()  # history/ itself, once its last folder went
