"""The store's plumbing: opening (writer or reader), transactions, events.

Every method that changes something is one transaction that also appends a row to the
append-only ``events`` table, and it has committed (fsynced, ``synchronous=FULL``) when it
returns: the scheduler may act on a transition the moment the call is over, and a ``kill -9``
one instruction later cannot take it back. The exceptions are what the gateway can tell again:
the cosmetic counters (``mark_progress``, ``record_poll``) and the completion and download start
(``mark_completed``, ``mark_downloading``: lost, the next run polls the task once more). They
are committed with ``synchronous=NORMAL``: visible to readers at once, durable with the next
real commit, and never reordered with it (one WAL, synced in order).

sqlite3 errors are translated into :class:`runner.core.errors.StateError` here, at the boundary;
those of a write transaction into its subclass :class:`runner.core.errors.StoreWriteFailed`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from runner.core.errors import StateError, StoreLocked, StoreWriteFailed
from runner.core.fsutil import make_private_dir
from runner.core.redact import redact_value
from runner.state import dbfile as schema
from runner.state.records import STATUSES, TakeStatus
from runner.state.sql import DB_ERRORS, Connection, begin_snapshot, is_postgres, tuple_rows

log = structlog.get_logger()
S = TakeStatus


def insert_event(
    conn: Connection, at: float, key: str | None, event: str, details: Mapping[str, Any]
) -> None:
    """Append one row to the event log (secrets redacted, as everywhere)."""
    if type(details) is not dict:
        details = dict(details)  # redact_value redacts inside dicts (and copies them)
    conn.execute(_INSERT_EVENT, (at, key, event, dumps(redact_value(details))))


_INSERT_EVENT = "INSERT INTO events (at, key, event, details) VALUES (?, ?, ?, ?)"


class UnknownTake(StateError, KeyError):
    """A take key the store does not know (a bug in the caller, or the wrong store)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown take"


class StoreDamaged(StateError):
    """The store's file is not a usable SQLite database (not SQLite, corrupt, failing its
    check). Refused with one line naming the command that rebuilds it from the output
    folder (:mod:`runner.state.rebuild`); ``command`` is that command, for the manifest
    when the caller knows it."""

    def __init__(self, path: Path, detail: str,
                 command: str = "shotrun store rebuild MANIFEST") -> None:
        self.path = Path(path)
        self.detail = " ".join(detail.split())[:200]
        self.command = command
        super().__init__(
            f"state store {self.path} is damaged ({self.detail}): run `{command}` to rebuild "
            "it from the output folder (spends nothing; the damaged file is kept beside it)")

    def naming(self, command: str) -> StoreDamaged:
        """The same refusal naming ``command`` (the manifest's own rebuild command)."""
        return StoreDamaged(self.path, self.detail, command)


SQLITE_HEADER = b"SQLite format 3\x00"
_DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # the file's fault, not the disk's


def check_header(path: Path) -> None:
    """:class:`StoreDamaged` when a non-empty ``path`` does not start as a SQLite file.

    sqlite reports such a file only at its first statement, as "file is not a database",
    which ``schema.connect`` would turn into a vaguer "cannot be opened".
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError:
        return  # connect() says what is wrong with it
    if head and head != SQLITE_HEADER:
        raise StoreDamaged(path, "not an SQLite database")


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; None when there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def take_writer_lock(path: Path) -> schema.WriterLock:
    """Create the store's folder and take its writer lock (:class:`StoreLocked` when a run
    holds it); the caller releases it, or hands it to :meth:`StoreBase.open_locked`."""
    try:
        make_private_dir(path.parent)
        lock = schema.WriterLock(path)
        lock.acquire()
    except OSError as exc:
        raise StateError(f"cannot create the state store {path}: {exc.strerror}") from exc
    return lock


# One encoder for every row: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Canonical compact JSON, as stored in the database."""
    return _ENCODER.encode(value)


class WriteTransaction:
    """The context of :meth:`StoreBase._write`: the store's lock held, ``BEGIN IMMEDIATE`` on
    entry, ``COMMIT`` on a clean exit, ``ROLLBACK`` on any exception; sqlite errors become
    :class:`StoreWriteFailed`. A class rather than a generator: seven of them per take."""

    __slots__ = ("_conn", "_durable", "_store")

    def __init__(self, store: StoreBase, durable: bool) -> None:
        self._store = store
        self._durable = durable

    def __enter__(self) -> Connection:
        store = self._store
        store._mutex.acquire()
        try:
            conn = self._conn = store.conn
            store._synchronous(conn, self._durable)
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            store._mutex.release()
            if isinstance(exc, DB_ERRORS):
                raise store._problem(exc) from exc
            raise
        return conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store, conn = self._store, self._conn
        try:
            if exc is None:
                try:
                    conn.execute("COMMIT")
                    return
                except BaseException as error:  # rolled back, then raised
                    exc = error
            # sqlite may have rolled back already (a full disk, an I/O error): a second
            # ROLLBACK would fail and hide the real error.
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except DB_ERRORS as error:
                raise store._problem(error) from error
            if isinstance(exc, DB_ERRORS):
                raise store._problem(exc) from exc
            if exc_type is None:  # the COMMIT was interrupted (KeyboardInterrupt...)
                raise exc
        finally:
            store._mutex.release()


class StoreBase:
    """Connection, lock and transaction handling shared by every part of the store."""

    def __init__(
        self,
        path: Path | None,
        conn: Connection,
        *,
        readonly: bool,
        lock: schema.WriterLock | None = None,
        clock: Callable[[], float] = time.time,
        where: str | None = None,
    ) -> None:
        #: The store's file (None for a database).
        self.path = path
        #: Where the store is, as messages name it (a path, or a database URL without its
        #: password).
        self.where = where or str(path)
        self.readonly = readonly
        self._conn: Connection | None = conn
        self._lock = lock
        self._clock = clock
        self._mutex = threading.RLock()  # callers may use asyncio.to_thread
        self._durable_mode = True  # schema.connect sets synchronous=FULL
        self._salt: str | None = None  # StateStore.client_salt, read once
        self._file_id: tuple[int, int] | None = None  # the writer's file (still_in_place)

    # ----------------------------------------------------------------- life cycle
    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Self:
        """Open (creating it and its directory) as *the* writer; fails if another run holds it."""
        path = Path(path)
        lock = take_writer_lock(path)
        try:
            return cls.open_locked(path, lock, clock=clock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open_locked(
        cls, path: Path, lock: schema.WriterLock, *, clock: Callable[[], float] = time.time
    ) -> Self:
        """:meth:`open` with the writer lock already taken (:func:`take_writer_lock`): a
        caller that rebuilds a lost store first holds the lock for both. The lock is the
        store's from here on (the caller releases it only when this raises)."""
        try:
            schema.create_private_file(path)
        except OSError as exc:
            raise StateError(f"cannot create the state store {path}: {exc.strerror}") from exc
        check_header(path)
        try:
            conn = schema.connect(path, readonly=False)
        except StateError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.DatabaseError) and str(
                    getattr(cause, "sqlite_errorname", "")).startswith(_DAMAGE):
                raise StoreDamaged(path, str(cause)) from exc
            raise
        try:
            schema.migrate(conn, path)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
        except sqlite3.OperationalError as exc:
            conn.close()
            raise StateError(
                f"state store {path} cannot be used: {schema.sqlite_problem(exc)}"
            ) from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreDamaged(path, str(exc)) from exc
        except BaseException:
            conn.close()
            raise
        log.debug("state_store_opened", path=str(path))
        store = cls(path, conn, readonly=False, lock=lock, clock=clock)
        store._file_id = _file_id(path)
        return store

    @classmethod
    def open_readonly(cls, path: Path) -> Self:
        """Open for reading beside a live run: takes no lock, never blocks the writer."""
        path = Path(path)
        if not path.is_file():
            raise StateError(f"no state store at {path}: no run has happened yet")
        check_header(path)
        conn = schema.connect(path, readonly=True)
        try:
            version = schema.stored_version(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if str(getattr(exc, "sqlite_errorname", "")).startswith(_DAMAGE):
                raise StoreDamaged(path, str(exc)) from exc
            raise StateError(f"state store {path} cannot be read: {exc}") from exc
        try:
            schema.check_version(path, version)
        except StateError:
            conn.close()
            raise
        if version < schema.SCHEMA_VERSION:
            conn.close()
            cls._upgrade(path, version)
            conn = schema.connect(path, readonly=True)
            if schema.stored_version(conn) < schema.SCHEMA_VERSION:  # pragma: no cover
                conn.close()
                raise StateError(f"state store {path} could not be upgraded from schema "
                                 f"version {version}")
        return cls(path, conn, readonly=True)

    def still_in_place(self) -> bool:
        """The writer's file is still the one at its path: False when it was deleted or
        replaced while the run held it (the run wrote into a file no one will read again;
        the next run rebuilds the store from the output folder)."""
        return self._file_id is None or self.path is None or _file_id(self.path) == self._file_id

    @classmethod
    def _upgrade(cls, path: Path, version: int) -> None:
        """Bring an older store to this shotrun's schema, as a run's open does, so that the
        reading commands read a store an older shotrun wrote (the migration changes the
        format, never what the store says). A run holding it (an older shotrun's, since ours
        migrates on open) is left alone: the reader is told to wait for it."""
        try:
            cls.open(path).close()
        except StoreLocked as exc:
            raise StateError(
                f"state store {path} has schema version {version} and a run (pid "
                f"{exc.pid or 'unknown'}) is using it: read it again once that run has ended"
            ) from None

    def close(self) -> None:
        """Close the database and release the writer lock (idempotent)."""
        with self._mutex:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- plumbing
    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise StateError(f"state store {self.where} is closed")
        return self._conn

    def _write(self, *, durable: bool = True) -> WriteTransaction:
        """One write transaction, committed on exit (rolled back on any exception)."""
        if self.readonly:
            raise StateError(f"state store {self.where} is open read-only")
        return WriteTransaction(self, durable)

    def _synchronous(self, conn: Connection, durable: bool) -> None:
        """``synchronous=FULL`` for a durable commit, ``NORMAL`` for a cheap one.

        The setting stays until the next commit that needs the other one: a run alternates
        less often than it commits, and the PRAGMA (it cannot be set inside a transaction)
        cost as much as the statements of a transition.
        """
        if self._durable_mode is not durable and not is_postgres(conn):
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            self._durable_mode = durable

    def _problem(self, exc: Exception) -> StoreWriteFailed:
        """A write that failed, as the store reports it (with what to do when the disk is at
        fault): its own type, because the command had got under way (exit 4, not 2)."""
        problem = schema.sqlite_problem(exc) if isinstance(exc, sqlite3.Error) else str(exc)
        return StoreWriteFailed(f"state store {self.where}: {problem}")

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._mutex:
            conn = self.conn
            try:
                conn.execute(begin_snapshot(conn))
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except DB_ERRORS as exc:
                raise StateError(f"state store {self.where}: {exc}") from exc

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Every row of one query (a snapshot of its own), database errors translated."""
        with self._mutex:
            try:
                return self.conn.execute(sql, params).fetchall()
            except DB_ERRORS as exc:
                raise StateError(f"state store {self.where}: {exc}") from exc

    def _tuples(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """:meth:`_rows` as plain tuples: several times cheaper than ``sqlite3.Row`` when a
        caller reads every column of 20,000 rows by position anyway."""
        with self._mutex:
            try:
                return tuple_rows(self.conn, sql, params)
            except DB_ERRORS as exc:
                raise StateError(f"state store {self.where}: {exc}") from exc

    def _event(
        self, conn: Connection, key: str | None, event: str, **details: Any
    ) -> None:
        insert_event(conn, self._clock(), key, event, details)

    def _status_of(self, conn: Connection, key: str) -> TakeStatus:
        row = conn.execute("SELECT status FROM takes WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise UnknownTake(f"take {key} is not in the state store {self.where}")
        return STATUSES[row[0]]

    def _refused(self, conn: Connection, key: str, target: str) -> StateError:
        """Why a move that changed no row was refused: an unknown take, or a forbidden move."""
        old = self._status_of(conn, key)
        return StateError(f"take {key}: cannot go from {old.value} to {target}")
