"""What the store's SQL needs of a database connection, whichever engine is behind it.

The store's statements are written once, in the SQL both engines speak (``?`` placeholders,
``INSERT … ON CONFLICT``, ``COALESCE(SUM(…), 0)``), and run on a :class:`Connection`: an
``sqlite3.Connection`` for the embedded file, or :class:`runner.state.pg.PgConnection` for a
team's PostgreSQL database, which presents the same few methods. One copy of every
transition, one ledger: the two stores cannot drift apart in what they mean.

:data:`DB_ERRORS` is what a statement may raise on either engine; the PostgreSQL adapter
raises :class:`PgFailure` (its message already cleaned of any password) so that this module,
and the store's plumbing, never import the driver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, cast


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the store uses (autocommit; explicit transactions)."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...


class TupleReader(Protocol):
    """A connection that returns plain tuples on request (the PostgreSQL adapter)."""

    def tuples(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class PgFailure(Exception):
    """A PostgreSQL statement failed; ``sqlstate`` is its five-character code."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, PgFailure)


def tuple_rows(conn: Connection, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` as a plain tuple: several times cheaper than named rows when a
    caller reads every column of 20,000 rows by position anyway."""
    if isinstance(conn, sqlite3.Connection):
        cursor = conn.cursor()
        cursor.row_factory = None
        rows: list[tuple[Any, ...]] = cursor.execute(sql, parameters).fetchall()
        return rows
    return cast(TupleReader, conn).tuples(sql, parameters)


def is_postgres(conn: Connection) -> bool:
    """True for a team's PostgreSQL store (statements that only one engine has)."""
    return not isinstance(conn, sqlite3.Connection)


def begin_snapshot(conn: Connection) -> str:
    """The statement that opens one consistent snapshot for several SELECTs: PostgreSQL's
    default isolation reads each statement's own snapshot, so it is asked for one for the
    whole block, as SQLite's ``BEGIN`` gives."""
    return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if is_postgres(conn) else "BEGIN"
