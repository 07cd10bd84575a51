"""``shotrun store copy``: a whole store moved between SQLite and PostgreSQL, either way.

A team starts from one person's solo folder: the takes already paid for, the ledger the
budget counts, the task ids of creations in flight, the picks and notes, all move into the
team's database, so that the team's first run collects what is in flight and creates only
what was never paid for. The way back (a team's database into a solo folder's file) is the
same copy.

What is copied: every durable table (:data:`COPIED`), row for row, ids kept (an event's id is
what a page tails the log by; the ledger's and the history's ids keep their order). What is
not: the team's live coordination (``runners``, ``claims``, ``seats``), which means nothing
outside the runs that wrote it and starts empty. The meta rows come along too: above all the
salt of the task ids shotrun chooses (Kling's ``external_task_id``), without which a creation
whose answer was lost could not be looked up by the id it was sent with.

It is one transaction on the target, read from one snapshot of the source, and it refuses,
before writing anything: a target that holds takes (or any other record: nothing is merged,
nothing overwritten), a source holding no takes, a source a run is writing (the embedded
file's writer lock; a team database whose runners' leases are live), and a store copied
onto itself. A new SQLite target is built beside its place and renamed into it once whole.
Nothing is sent to a provider: the copy spends nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from runner.core.errors import StateError, StoreLocked
from runner.state.base import take_writer_lock
from runner.state.dbfile import WriterLock
from runner.state.rebuild import PRESENT, built_aside, clear_orphans, condition
from runner.state.sql import (
    DB_ERRORS,
    Connection,
    begin_snapshot,
    is_postgres,
    tuple_rows,
)
from runner.state.store import StateStore

if TYPE_CHECKING:
    from runner.state.pgstore import PgStore

log = structlog.get_logger()

#: The durable tables, in the order they are copied, each with the column it is read in
#: order of, and whether that column is an identity (its sequence moved past the copied ids).
COPIED: tuple[tuple[str, str, bool], ...] = (
    ("meta", "name", False),
    ("takes", "key", False),
    ("take_history", "history_id", True),
    ("attempts", "id", True),
    ("uploads", "sha256", False),
    ("events", "id", True),
    ("picks", "shot_id", False),
    ("notes", "key", False),
)
#: The meta row that marks a PostgreSQL database as shotrun's (:mod:`runner.state.pgschema`):
#: the engine's own, never copied.
_OWN_META = "application"
_PAGE = 5000  # rows of a long table (the events) read and written at a time

#: A store's place: a PostgreSQL URL (``str``) or the path of a store file.
Place = str | Path


@dataclass(frozen=True)
class Copied:
    """How many rows of each durable table were copied, from where to where (as messages
    name them: a URL without its password)."""

    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)

    def count(self, table: str) -> int:
        return self.rows.get(table, 0)

    def describe(self) -> str:
        """``12 takes, 3 picks, 2 notes, 140 events (and 14 attempts of the budget's
        ledger, 1 earlier version of a take, 3 uploads)``."""
        main = ", ".join(f"{self.count(t)} {t}" for t in ("takes", "picks", "notes", "events"))
        more = [f"{self.count('attempts')} attempts of the budget's ledger"]
        if self.count("take_history"):
            more.append(f"{self.count('take_history')} earlier versions of takes")
        if self.count("uploads"):
            more.append(f"{self.count('uploads')} uploads")
        return f"{main} ({', '.join(more)})"


def copy_rows(source: Connection, target: Connection, *, source_where: str,
              target_where: str, clock: Callable[[], float] = time.time) -> Copied:
    """Copy every durable table of ``source`` into ``target`` (both at the current schema,
    on either engine), in one transaction on the target read from one snapshot of the
    source; refuse, writing nothing, what :mod:`this module <runner.state.copy>` refuses."""
    source.execute(begin_snapshot(source))
    try:
        _check_source(source, source_where, clock())
        target.execute("BEGIN IMMEDIATE")
        try:
            _check_target(target, target_where, clock())
            copied = Copied(source_where, target_where,
                            {table: _copy_table(source, target, table, order, identity)
                             for table, order, identity in COPIED})
            target.execute("COMMIT")
        except BaseException:
            if target.in_transaction:
                target.execute("ROLLBACK")
            raise
    except DB_ERRORS as exc:
        raise StateError(f"the store {source_where} could not be copied to {target_where} "
                         f"({exc}); nothing was written") from None
    finally:
        if source.in_transaction:
            source.execute("COMMIT")
    log.info("store_copied", source=source_where, target=target_where, **copied.rows)
    return copied


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _check_source(conn: Connection, where: str, now: float) -> None:
    """Refuse a source holding no takes, or one whose team runners are at work."""
    if not _count(conn, "takes"):
        raise StateError(f"the store {where} holds no takes: nothing to copy (nothing was "
                         "written)")
    _refuse_live_runners(conn, where, now)


def _refuse_live_runners(conn: Connection, where: str, now: float) -> None:
    """Refuse a store team runners are working on: their leases are live (by the database's
    clock, as the runners keep them: :mod:`runner.state.team`)."""
    if is_postgres(conn):
        from runner.state.team import DB_NOW

        row = conn.execute(f"SELECT COUNT(*) FROM runners WHERE lease_until > {DB_NOW}"
                           ).fetchone()
    else:
        row = conn.execute("SELECT COUNT(*) FROM runners WHERE lease_until > ?",
                           (now,)).fetchone()
    if int(row[0]):
        raise StoreLocked(f"the store {where} has {row[0]} runner(s) with a live lease: "
                          "runners are using it: copy once they end (nothing was written)")


def _check_target(conn: Connection, where: str, now: float) -> None:
    """Refuse a target that holds takes, or any record, or runners at work: a copy never
    merges into nor overwrites a store."""
    takes = _count(conn, "takes")
    if takes:
        raise StateError(
            f"the store {where} already holds {takes} takes: copy into a new store (an empty "
            "database, or a manifest whose output folder has no store yet); nothing was "
            "written")
    _refuse_live_runners(conn, where, now)
    held = [f"{n} {table}" for table, _, _ in COPIED if table not in ("meta", "takes")
            if (n := _count(conn, table))]
    if held:
        raise StateError(
            f"the store {where} holds no takes but already holds {', '.join(held)}: copy "
            "into a new store (an empty database, or a manifest whose output folder has no "
            "store yet); nothing was written")


def _copy_table(source: Connection, target: Connection, table: str, order: str,
                identity: bool) -> int:
    """Copy one table (the source in its snapshot, the target in its transaction)."""
    skip = ""
    if table == "meta":
        # The source's settings replace the target's, absent ones included: a store whose
        # creations went out before salts existed has no salt row and means the empty
        # salt; a salt the empty target made would change the ids of its lost creations.
        skip = f" WHERE name <> '{_OWN_META}'"
        target.execute(f"DELETE FROM meta{skip}")
    first = source.execute(f"SELECT * FROM {table} LIMIT 1").fetchone()
    if first is None:
        return 0
    columns = list(first.keys())
    names = ", ".join(columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    copied = 0
    if not identity:
        rows = tuple_rows(source, f"SELECT {names} FROM {table}{skip} ORDER BY {order}")
        target.executemany(insert, rows)
        return len(rows)
    last = None
    while True:
        page = tuple_rows(source, f"SELECT {names} FROM {table} WHERE {order} > ?"
                          f" ORDER BY {order} LIMIT {_PAGE}", (-1 if last is None else last,))
        if not page:
            break
        target.executemany(insert, page)
        copied += len(page)
        last = page[-1][columns.index(order)]
    if is_postgres(target):  # SQLite moves its AUTOINCREMENT past explicit ids by itself
        target.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{order}'),"
                       f" MAX({order})) FROM {table}")
    return copied


def same_store(source: Place, target: Place) -> bool:
    """Whether two places name one store file (the same path, or one file by two paths)."""
    if isinstance(source, Path) and isinstance(target, Path):
        if source.resolve() == target.resolve():
            return True
        try:
            return os.path.samefile(source, target)
        except OSError:
            return False
    return False


def _database_identity(conn: Connection) -> tuple[str, str]:
    """The database and the start of the server holding it: the same pair means the same
    database, whichever host name, address or socket reached it."""
    row = conn.execute("SELECT current_database(), pg_postmaster_start_time()::text"
                       ).fetchone()
    return (str(row[0]), str(row[1]))


def copy_store(source: Place, target: Place, *,
               clock: Callable[[], float] = time.time) -> Copied:
    """Copy the store at ``source`` (a PostgreSQL URL or a store file) into ``target``."""
    if source == target or same_store(source, target):
        raise StateError(f"the source and the target are the same store ({_shown(source)}): "
                         "give another target; nothing was written")
    with _opened_source(source, clock) as store:
        try:  # before the target is touched (copy_rows checks again, in its snapshot)
            _check_source(store.conn, store.where, clock())
        except DB_ERRORS as exc:
            raise StateError(f"the store {store.where} cannot be read ({exc})") from None
        with _filled(target) as (conn, where):
            return _copy_between(store, conn, where, clock)


def _copy_between(store: StateStore, conn: Connection, where: str,
                  clock: Callable[[], float]) -> Copied:
    """:func:`copy_rows` from the opened source into the opened target, once they are
    known to be two databases (two URLs may name one)."""
    if (is_postgres(store.conn) and is_postgres(conn)
            and _database_identity(store.conn) == _database_identity(conn)):
        raise StateError(f"the source and the target are the same database ({where}): "
                         "give another target; nothing was written")
    return copy_rows(store.conn, conn, source_where=store.where, target_where=where,
                     clock=clock)


def _shown(place: Place) -> str:
    from runner.core.storeurl import redact_url

    return redact_url(place) if isinstance(place, str) else str(place)


@contextmanager
def _opened_source(place: Place, clock: Callable[[], float]) -> Iterator[StateStore]:
    """The source store, opened as usual (migrated to the current schema); the embedded
    file under its writer lock, so that no run writes it while it is read."""
    if isinstance(place, str):
        with _pg_source(place, clock) as pg:
            yield pg
        return
    if condition(place) != PRESENT:
        raise StateError(f"no store at {place} (or an empty file): nothing to copy (nothing "
                         "was written)")
    try:
        store = StateStore.open(place, clock=clock)
    except StoreLocked as exc:
        raise StoreLocked(f"{exc}: copy once that run has ended (nothing was written)",
                          exc.pid) from None
    with store:
        yield store


@contextmanager
def _pg_source(url: str, clock: Callable[[], float]) -> Iterator[PgStore]:
    """A team database to copy from: one holding no shotrun store is refused as it is,
    never given an empty schema by the opening."""
    from runner.state import pgschema
    from runner.state.pgstore import PgStore, connect

    conn = connect(url)
    try:
        version = pgschema.check(conn)
    finally:
        conn.close()
    if version == 0:
        raise StateError(f"the database {conn.where} holds no shotrun store: nothing to copy "
                         "(nothing was written)")
    with PgStore.open_url(url, readonly=True, clock=clock) as store:
        yield store


@contextmanager
def _filled(place: Place) -> Iterator[tuple[Connection, str]]:
    """The target's connection and its name, for one copy: a team database opened as
    usual (its schema created when empty); an existing store file under its writer lock;
    a new store file built beside its place and renamed into it when the copy is whole."""
    if isinstance(place, str):
        from runner.state.pgstore import PgStore

        with PgStore.open_url(place) as pg:
            yield pg.conn, pg.where
        return
    try:
        held = take_writer_lock(place)
    except StoreLocked as exc:
        raise StoreLocked(f"{exc}: copy once that run has ended (nothing was written)",
                          exc.pid) from None
    lock: WriterLock | None = held
    try:
        if condition(place) == PRESENT:
            store = StateStore.open_locked(place, held)
            lock = None  # the store's now: closing it releases the lock
            with store:
                yield store.conn, store.where
            return
        clear_orphans(place)
        try:
            with built_aside(place, "copying") as conn:
                yield conn, str(place)
        except OSError as exc:
            raise StateError(f"the store {place} could not be written ({exc.strerror or exc}); "
                             "nothing was written") from exc
    finally:
        if lock is not None:
            lock.release()
