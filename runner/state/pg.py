"""The PostgreSQL connection of a team's store, speaking to the store's SQL like sqlite3 does.

Why psycopg 3, and its synchronous connection: the store's promise is that a transition has
committed when its call returns (the scheduler acts on it the next instruction), so every
store call is a short blocking transaction, on SQLite as here; a round trip to a database on
the studio's network is well under a millisecond. psycopg 3 is the maintained PostgreSQL
adapter that speaks libpq's URLs, ``PGPASSWORD`` and ``~/.pgpass`` exactly as ``psql`` does,
has server-side parameter binding, and ships wheels with libpq (``psycopg[binary]``), so a
fresh machine needs no compiler. asyncpg would make every store call a coroutine: the
scheduler's whole call graph rewritten for no gain in safety.

:class:`PgConnection` presents the few methods of ``sqlite3.Connection`` the store uses
(:class:`runner.state.sql.Connection`): ``?`` placeholders are rewritten to ``%s`` once per
statement text, rows answer by position and by column name, NUMERIC sums come back as
``int`` or ``float``, and any driver error becomes :class:`runner.state.sql.PgFailure` with
the password taken out of its text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import adapt, rows
from psycopg.pq import TransactionStatus

from runner.core.redact import redact
from runner.core.storeurl import redact_url
from runner.state.sql import PgFailure

log = structlog.get_logger()

_TRANSLATED: dict[str, str] = {}
_T = TypeVar("_T")

#: How long a statement that found its connection gone tries to connect again (seconds): a
#: server restart or a failover takes a few; longer, the store reports the failure.
RECONNECT_FOR = 15.0
RECONNECT_EVERY = 0.5


def translate(sql: str) -> str:
    """``sql`` with ``?`` placeholders as ``%s`` and literal ``%`` doubled (outside quotes)."""
    done = _TRANSLATED.get(sql)
    if done is not None:
        return done
    out: list[str] = []
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
            out.append(char)
        elif char == "%":
            out.append("%%")
        elif char == "?" and not quoted:
            out.append("%s")
        else:
            out.append(char)
    done = _TRANSLATED[sql] = "".join(out)
    return done


class Row:
    """One row, by position (``row[0]``) or by column name (``row["status"]``), like
    ``sqlite3.Row``."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def __getitem__(self, index: int | str) -> Any:
        if isinstance(index, str):
            return self._values[self._names[index]]
        return self._values[index]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def _named_rows(cursor: psycopg.Cursor[Any]) -> rows.RowMaker[Row]:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


class _Numeric(adapt.Loader):
    """NUMERIC (what ``SUM`` of integers gives) as ``int`` when whole, else ``float``: the
    store's figures are floats on SQLite, never ``Decimal``."""

    def load(self, data: adapt.Buffer) -> int | float:
        text = bytes(data).decode("ascii")
        return float(text) if any(c in text for c in ".eEN") else int(text)


class PgCursor:
    """The rows of one statement (already fetched: the store's results are small or wanted
    whole), with the count of rows it changed."""

    def __init__(self, fetched: list[Any], rowcount: int) -> None:
        self._rows = fetched
        self._rowcount = rowcount

    @property
    def rowcount(self) -> int:
        return self._rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class PgConnection:
    """A psycopg connection in autocommit mode (the store writes ``BEGIN``/``COMMIT``).

    A connection the server dropped (a restart, a failover, an idle timeout) is opened again
    by the next statement that *starts* something (``BEGIN``, or a lone ``SELECT`` outside a
    transaction), and that statement is sent again: nothing of it had reached the database.
    A statement inside a transaction is never repeated: the transaction is lost with the
    connection, its error goes up, and the store's caller stops as on any failed write.
    """

    def __init__(self, conn: psycopg.Connection[Any], url: str,
                 reconnect: Callable[[], psycopg.Connection[Any]] | None = None) -> None:
        self.raw = conn
        self.where = redact_url(url)
        self._reconnect = reconnect
        #: How long a dropped connection is tried again (a team's runner: at most its lease,
        #: past which its claims are another runner's anyway).
        self.patience = RECONNECT_FOR
        conn.adapters.register_loader("numeric", _Numeric)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status is not TransactionStatus.IDLE

    def _failure(self, exc: psycopg.Error) -> PgFailure:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return PgFailure(redact(text), getattr(exc, "sqlstate", None))

    def _repeatable(self, sql: str) -> bool:
        """True when ``sql`` may be sent again on a new connection: it starts a transaction
        or is a lone read, and no transaction of ours was open when it was sent."""
        if self._reconnect is None:
            return False
        status = self.raw.info.transaction_status
        if status not in (TransactionStatus.IDLE, TransactionStatus.UNKNOWN):
            return False
        words = sql.split(maxsplit=1)
        return bool(words) and words[0].upper() in ("BEGIN", "SELECT")

    def _connect_again(self, exc: psycopg.Error) -> None:
        """A new connection in place of the dropped one, trying for :attr:`patience` seconds;
        the last failure (cleaned of the password) when it cannot."""
        assert self._reconnect is not None
        log.warning("store_connection_lost", where=self.where,
                    error=redact(" ".join(str(exc).split()))[:200])
        deadline = time.monotonic() + self.patience
        while True:
            try:
                raw = self._reconnect()
            except psycopg.Error as error:
                if time.monotonic() >= deadline:
                    raise self._failure(error) from None
                time.sleep(RECONNECT_EVERY)
                continue
            raw.adapters.register_loader("numeric", _Numeric)
            self.raw = raw
            log.info("store_reconnected", where=self.where)
            return

    def _run(self, sql: str, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``work`` on the connection, once more on a new one when the server had dropped it
        and ``sql`` may be repeated; driver errors as :class:`PgFailure`."""
        repeatable = self._repeatable(sql)
        try:
            return work(self.raw)
        except psycopg.Error as exc:
            if not (repeatable and self.raw.closed):
                raise self._failure(exc) from None
            self._connect_again(exc)
        try:
            return work(self.raw)
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        statement = "BEGIN" if sql == "BEGIN IMMEDIATE" else sql

        def work(raw: psycopg.Connection[Any]) -> PgCursor:
            with raw.cursor(row_factory=_named_rows) as cursor:
                cursor.execute(translate(statement), tuple(parameters))
                fetched = cursor.fetchall() if cursor.description is not None else []
                return PgCursor(fetched, cursor.rowcount)

        return self._run(statement, work)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(translate(sql), [tuple(p) for p in parameters])
                return PgCursor([], cursor.rowcount)
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def tuples(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def work(raw: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            with raw.cursor() as cursor:
                cursor.execute(translate(sql), tuple(parameters))
                return cursor.fetchall()

        return self._run(sql, work)

    def script(self, sql: str) -> None:
        """Run DDL as written (no placeholders: ``$$`` bodies and ``%`` left alone)."""
        try:
            self.raw.execute(sql.encode())
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def close(self) -> None:
        self.raw.close()
