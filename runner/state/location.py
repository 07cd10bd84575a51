"""Where a manifest's store is: the embedded file in its output folder, or a team's database.

The database wins when a URL is given: ``--store URL`` (the command line sets
``SHOTRUN_STORE_URL`` for the process), else ``SHOTRUN_STORE_URL`` in the environment, else the
manifest's ``state.url`` (:func:`runner.core.storeurl.store_url`); with none, the file
``<output_dir>/.shotrun/state.sqlite`` as always. Every command asks here, so that ``status``,
``report``, ``review``, ``pick`` and ``export`` read the same store the runners write, from any
machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runner.core.errors import UsageError
from runner.core.model import Manifest
from runner.core.storeurl import ENV_STORE_URL, redact_url, store_url
from runner.state import store_path_for
from runner.state.dbfile import writer_pid
from runner.state.store import StateStore


@dataclass(frozen=True)
class StoreAt:
    """A manifest's store: its file (``url`` None) or its database."""

    path: Path
    url: str | None = None

    @property
    def shared(self) -> bool:
        """True for a team's database (several runners, claims and seats)."""
        return self.url is not None

    @property
    def where(self) -> str:
        """As messages name it (a URL without its password)."""
        return redact_url(self.url) if self.url is not None else str(self.path)

    def exists(self) -> bool:
        """False when no run has made the embedded file yet (a database is always there to
        ask: an empty one reads as a store with no takes)."""
        return self.url is not None or self.path.is_file()

    def open_reader(self) -> StateStore:
        """Open for reading beside live runs (never blocks them)."""
        if self.url is None:
            return StateStore.open_readonly(self.path)
        from runner.state.pgstore import PgStore  # the driver only where a database is used

        return PgStore.open_url(self.url, readonly=True)

    def run_pid(self) -> int | None:
        """The pid of the run holding the embedded file (a hint: see
        :func:`runner.state.dbfile.writer_pid`); None for a database, where runners hold no
        lock (who works there: :func:`runner.state.roster.live_runners`)."""
        return writer_pid(self.path) if self.url is None else None

    def refuse_shared(self, what: str) -> None:
        """A :class:`UsageError` (exit 2) when the store is a database: ``what`` (a command
        of the embedded file only) cannot apply to it."""
        if self.url is not None:
            raise UsageError(f"{what} is for the embedded SQLite file, and this store is the "
                             f"database {self.where} (PostgreSQL keeps its data whole; "
                             f"nothing was changed); for the file {self.path}, unset "
                             f"--store, {ENV_STORE_URL} and state.url")

    def open_writer(self) -> StateStore:
        """Open for writing: the file's writer lock, or a connection to the database (where
        runners write side by side, coordinated by claims)."""
        if self.url is None:
            return StateStore.open(self.path)
        from runner.state.pgstore import PgStore

        return PgStore.open_url(self.url)


def store_at(manifest: Manifest) -> StoreAt:
    """Where ``manifest``'s store is now (flag, environment, manifest; else its file)."""
    return store_in(manifest.output_dir, manifest.store_url)


def store_in(output_dir: Path, manifest_url: str | None = None) -> StoreAt:
    """Where the store of the manifest writing to ``output_dir`` is, its ``state.url``
    being ``manifest_url``: :func:`store_at` for a manifest that no longer loads."""
    return StoreAt(store_path_for(output_dir), store_url(None, os.environ, manifest_url))
