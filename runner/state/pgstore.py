"""The team's store: the same takes, transitions and ledger, in a PostgreSQL database.

:class:`PgStore` is :class:`runner.state.StateStore` on a :class:`~runner.state.pg.PgConnection`:
every statement, transition and rule is the embedded store's, so the two cannot disagree
about what a take's state means. What differs is how it is opened (a URL, not a file and its
writer lock: several runners write at once, coordinated by claims and seats,
:mod:`runner.state.team`) and what "committed" rests on (PostgreSQL's own durable commit).

Opening refuses in one line, before anything is sent to a provider: a server that cannot be
reached, a refused password, a missing database, a database of another application, a store
of a newer shotrun. The password (in the URL or in ``PGPASSWORD``) is registered as a secret:
no log line, report or message can carry it.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict

from runner.core.errors import StateError
from runner.core.redact import redact, register_secret
from runner.core.storeurl import redact_url, url_passwords
from runner.state import pgschema
from runner.state.pg import PgConnection
from runner.state.sql import Connection, PgFailure
from runner.state.store import StateStore
from runner.state.team import live_claims
from runner.state.transitions import ClaimLost

if TYPE_CHECKING:
    from runner.state.team import Team

BUDGET_LOCK = 0x5305_B0D6
CONNECT_TIMEOUT = 10  # seconds: an unreachable server is reported, not waited on forever


def _refusal(where: str, user: str, database: str, exc: psycopg.Error) -> StateError:
    """One line saying why the database could not be opened, and what to do."""
    text = " ".join(str(exc).split())
    low = text.lower()
    if "password" in low and ("authentication failed" in low or "no password" in low):
        return StateError(
            f"the database {where} refused the password of user {user!r}: set the right one "
            "in PGPASSWORD or ~/.pgpass (never in the manifest); nothing was sent")
    if "database" in low and "does not exist" in low:
        return StateError(
            f"the database {database!r} does not exist at {where}: create it "
            f"(`createdb {database}`) or fix the URL; nothing was sent")
    if "role" in low and "does not exist" in low:
        return StateError(f"the database {where} has no user {user!r}: create it or fix the "
                          "URL; nothing was sent")
    return StateError(
        f"cannot reach the database {where} ({redact(text)[:200]}): is the server running "
        "and the URL right? nothing was sent")


def connect(url: str) -> PgConnection:
    """A connection to the store's database (autocommit), or one line saying why not."""
    where = redact_url(url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StateError(f"the store URL {where} cannot be read ({redact(str(exc))[:200]}):"
                         " use postgresql://USER@HOST:PORT/DATABASE") from None
    for password in url_passwords(url):
        register_secret(password)
    register_secret(str(params.get("password") or "") or None)
    register_secret(os.environ.get("PGPASSWORD"))
    user = str(params.get("user") or os.environ.get("PGUSER") or "")
    database = str(params.get("dbname") or os.environ.get("PGDATABASE") or user)

    def opened() -> psycopg.Connection[Any]:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                               application_name="shotrun")

    try:
        raw = opened()
    except psycopg.Error as exc:
        raise _refusal(where, user, database, exc) from None
    return PgConnection(raw, url, reconnect=opened)


class PgStore(StateStore):
    """The :class:`runner.state.protocol.Store` of a team: one PostgreSQL database."""

    #: This process's membership of the team (:meth:`runner.state.team.Team.join`); None
    #: for a reader or before joining.
    team: Team | None = None
    _url = ""

    def _begin_sync(self, conn: Connection) -> None:
        """Runners sync one at a time: an advisory lock held to the commit."""
        conn.execute("SELECT pg_advisory_xact_lock(?)", (pgschema.SYNC_LOCK,))

    def _busy(self, conn: Connection) -> Collection[str]:
        """The takes other live runners hold: ``sync`` leaves them to them."""
        return live_claims(conn, self.team.id if self.team is not None else None)

    def _admit_submitting(self, conn: Connection, key: str) -> None:
        """Only the runner holding the take's claim, under a live lease, creates it."""
        if self.team is not None and not self.team.holds(conn, key):
            raise ClaimLost(key)

    def _check_cap(self, conn: Connection, unit: str, estimate: float | None,
                   cap: float) -> None:
        """The ledger locked first: two runners' intents are checked one after the other."""
        conn.execute("SELECT pg_advisory_xact_lock(?)", (BUDGET_LOCK,))
        super()._check_cap(conn, unit, estimate, cap)

    @classmethod
    def open_url(cls, url: str, *, readonly: bool = False,
                 clock: Callable[[], float] = time.time) -> Self:
        """Open the store at ``url`` (creating its schema in an empty database)."""
        conn = connect(url)
        try:
            pgschema.migrate(conn)
        except PgFailure as exc:
            conn.close()
            raise StateError(f"state store {conn.where} cannot be used: {exc}") from None
        except BaseException:
            conn.close()
            raise
        store = cls(None, conn, readonly=readonly, clock=clock, where=conn.where)
        store._url = url  # for a listening connection (runner.state.team); never shown
        return store

    def reconnect_within(self, seconds: float) -> None:
        """Try to connect again after a dropped connection for at most ``seconds`` (a team's
        runner: its lease; past it, other runners may hold its takes)."""
        conn = self.conn
        if isinstance(conn, PgConnection):
            conn.patience = min(conn.patience, seconds)

    async def notifications(self, channels: Sequence[str]) -> AsyncIterator[str]:
        """The channel of every ``NOTIFY`` on ``channels``, on a connection of its own (a
        runner's wake-up: a seat or a claim set free by another runner)."""
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
            application_name="shotrun listen")
        try:
            for channel in channels:
                await conn.execute(f"LISTEN {channel}".encode())
            async for note in conn.notifies():
                yield note.channel
        finally:
            await conn.close()
