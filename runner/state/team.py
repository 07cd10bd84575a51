"""Several runners on one shot list: leases, claims and seats in the team's database.

Why a few SQL statements rather than a job-queue library: the well-known PostgreSQL queues
(Procrastinate, pgqueuer, graphile-worker) all promise *at least once*: a worker killed with
jobs in hand has them run again elsewhere. For a paid creation that is paying twice. Here the
store's own ledger stays the law: a take is claimed, never "re-run"; a runner that takes over
a dead runner's take plans it again from its record (:func:`runner.state.sync.replan`): a
recorded task is collected by its id, a creation without an answer is counted ambiguous and
held (or looked up by ``external_task_id`` on Kling). A queue library would be a second ledger
to keep in step with this one; these statements are the whole of it.

- **Runner**: one row per ``shotrun run`` process, with a lease (``lease_until``, the
  database's clock: machines' clocks may disagree) renewed by a heartbeat. Claims and seats
  live exactly as long as their runner's lease.
- **Claim**: a take is worked on by one runner at a time. Claiming is one transaction that
  locks the claim's row, checks that no live runner holds it, takes it and plans the take
  again. Creating (``mark_submitting``) checks, in its own transaction, that the claim is
  still this runner's: a runner whose lease ran out cannot create what another took over.
- **Seat**: one row per unit of a provider account's concurrency. A creation takes a free
  seat (``FOR UPDATE SKIP LOCKED``) of an account this runner holds a key for, and keeps it
  while its task is in flight; a seat of a dead runner whose take is still in flight stays
  taken until a runner adopts that take with its claim.
- **Budget**: reserving at creation locks the ledger (an advisory lock) in the intent's
  transaction, so racing runners never commit more than the cap between them.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from runner.state.records import TakePlan, TakeStatus
from runner.state.sql import Connection
from runner.state.sync import replan

if TYPE_CHECKING:
    from runner.state.pgstore import PgStore as TeamStore

log = structlog.get_logger()

#: The database's clock, in seconds since the epoch (leases compare with it only: the
#: machines' clocks may disagree).
DB_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
#: Runners whose lease is live.
_LIVE = f"SELECT id FROM runners WHERE lease_until > {DB_NOW}"


def live_claims(conn: Connection, runner: str | None) -> set[str]:
    """Takes held by live runners other than ``runner``."""
    rows = conn.execute(
        f"SELECT key FROM claims WHERE runner IN ({_LIVE})"
        " AND runner IS DISTINCT FROM ?", (runner,))
    return {str(row[0]) for row in rows}


#: What a runner is woken by (``pg_notify`` when a seat or a claim is set free): a runner
#: waiting for a seat, or for takes other runners hold, starts at once instead of at its
#: next look (``--team-poll``, still the fallback when a notification is missed).
SEATS_CHANNEL = "shotrun_seats"
CLAIMS_CHANNEL = "shotrun_claims"
DEFAULT_LEASE = 30.0  # seconds: a dead runner's takes wait this long for a new runner

# Statuses whose task is (or may be) in flight at the provider: its seat stays taken.
_IN_FLIGHT = "('submitting', 'submitted')"
_SEATED = frozenset({TakeStatus.SUBMITTING, TakeStatus.SUBMITTED})


@dataclass(frozen=True)
class TeamView:
    """Who works on the shot list now, as the run's summary shows it."""

    runners: int  # live runners, this one included


def new_runner_id() -> str:
    """Host, pid and a random part: unique across machines and pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _wake(conn: Connection, *channels: str) -> None:
    """Notify the runners listening on ``channels``, when this transaction commits."""
    for channel in channels:
        conn.execute("SELECT pg_notify(?, '')", (channel,))


class Team:
    """This runner's membership of the team working on one store."""

    def __init__(self, store: TeamStore, *, lease: float = DEFAULT_LEASE,
                 retry_failed: bool = False, ambiguous: str = "hold") -> None:
        self.store = store
        self.lease = lease
        self.retry_failed = retry_failed
        self.ambiguous = ambiguous
        self.id = new_runner_id()
        self.mine: set[str] = set()  # takes this runner holds

    # ----------------------------------------------------------------- the runner
    def join(self) -> None:
        """Register this runner with a fresh lease; the store checks claims against it."""
        with self.store._write() as conn:
            conn.execute(
                f"INSERT INTO runners (id, host, pid, started_at, lease_until)"
                f" VALUES (?, ?, ?, {DB_NOW}, {DB_NOW} + ?)",
                (self.id, socket.gethostname(), os.getpid(), self.lease))
        self.store.team = self
        self.store.reconnect_within(self.lease)
        log.info("team_joined", runner=self.id, lease=self.lease)

    def renew(self) -> bool:
        """Extend the lease; False when it had run out (another runner may hold our takes)."""
        with self.store._write(durable=False) as conn:
            changed = conn.execute(
                f"UPDATE runners SET lease_until = {DB_NOW} + ? WHERE id = ?"
                f" AND lease_until > {DB_NOW}", (self.lease, self.id)).rowcount
        return changed == 1

    def leave(self) -> None:
        """Give back every claim and every seat whose task is not in flight; end the lease."""
        with self.store._write() as conn:
            conn.execute("UPDATE claims SET runner = '' WHERE runner = ?", (self.id,))
            conn.execute(
                "UPDATE seats SET runner = NULL, take_key = NULL, taken_at = NULL"
                f" WHERE runner = ? AND take_key NOT IN (SELECT key FROM takes"
                f" WHERE status IN {_IN_FLIGHT})", (self.id,))
            conn.execute(f"UPDATE runners SET lease_until = {DB_NOW}, ended_at = {DB_NOW}"
                         " WHERE id = ?", (self.id,))
            _wake(conn, SEATS_CHANNEL, CLAIMS_CHANNEL)
        self.mine.clear()
        self.store.team = None

    def view(self) -> TeamView:
        """The live runners, by the one rule ``status`` reads them with
        (:func:`runner.state.roster.live_runners`)."""
        from runner.state.roster import live_runners  # roster reads this module's clock

        return TeamView(len(live_runners(self.store)))

    # ----------------------------------------------------------------- claims
    def claim(self, key: str) -> TakePlan | None:
        """Take ``key`` for this runner and plan it again; None while a live runner holds it."""
        if key in self.mine:
            return None
        with self.store._write() as conn:
            conn.execute("INSERT INTO claims (key, runner, claimed_at) VALUES (?, '', 0)"
                         " ON CONFLICT (key) DO NOTHING", (key,))
            row = conn.execute("SELECT runner FROM claims WHERE key = ? FOR UPDATE",
                               (key,)).fetchone()
            holder = str(row[0])
            if holder and holder != self.id and conn.execute(
                    f"SELECT 1 FROM runners WHERE id = ? AND lease_until > {DB_NOW}",
                    (holder,)).fetchone() is not None:
                return None
            conn.execute(f"UPDATE claims SET runner = ?, claimed_at = {DB_NOW} WHERE key = ?",
                         (self.id, key))
            plan = replan(conn, key, self.store._clock, retry_failed=self.retry_failed,
                          ambiguous=self.ambiguous)
            if plan.record.status in _SEATED:
                # A dead runner's seat follows its take: its task is still rendering.
                conn.execute("UPDATE seats SET runner = ? WHERE take_key = ?", (self.id, key))
            else:
                # Not (or no longer) in flight: done, failed, or an ambiguous creation now
                # held. Its seat is free again; kept, nobody would ever give it back.
                if conn.execute("UPDATE seats SET runner = NULL, take_key = NULL,"
                                " taken_at = NULL WHERE take_key = ?", (key,)).rowcount:
                    _wake(conn, SEATS_CHANNEL)
        self.mine.add(key)
        if holder and holder != self.id:
            log.info("take_taken_over", take=key, from_runner=holder)
        return plan

    def release(self, key: str) -> None:
        """Let go of ``key`` (its state is committed: another runner may take it up)."""
        if key not in self.mine:
            return
        self.mine.discard(key)
        with self.store._write() as conn:
            # The row stays (a claim is its runner's id): a runner claiming it at this very
            # moment always finds the row it locks.
            conn.execute("UPDATE claims SET runner = '' WHERE key = ? AND runner = ?",
                         (key, self.id))
            _wake(conn, CLAIMS_CHANNEL)

    def still_holds(self, key: str) -> bool:
        """:meth:`holds`, in a transaction of its own."""
        with self.store._read() as conn:
            return self.holds(conn, key)

    def holds(self, conn: Connection, key: str) -> bool:
        """True while this runner's lease is live and ``key`` is claimed by it."""
        return conn.execute(
            f"SELECT 1 FROM claims c JOIN runners r ON r.id = c.runner WHERE c.key = ?"
            f" AND c.runner = ? AND r.lease_until > {DB_NOW}", (key, self.id)
        ).fetchone() is not None

    # ----------------------------------------------------------------- seats
    def provide_seats(self, accounts: Mapping[str, int]) -> None:
        """Make sure each account has exactly its concurrency in seats (free ones beyond it
        are removed; taken ones go when their task leaves the provider)."""
        with self.store._write() as conn:
            for account, concurrency in accounts.items():
                for seat in range(concurrency):
                    conn.execute("INSERT INTO seats (account, seat) VALUES (?, ?)"
                                 " ON CONFLICT (account, seat) DO NOTHING", (account, seat))
                conn.execute("DELETE FROM seats WHERE account = ? AND seat >= ?"
                             " AND take_key IS NULL", (account, concurrency))

    def take_seat(self, key: str, accounts: Sequence[str]) -> str | None:
        """A free seat of one of ``accounts`` for ``key``'s creation: its account, or None.

        Free: nobody's, or a dead runner's whose take is no longer in flight. The account
        with the most free seats first, so that work spreads over the accounts.
        """
        if not accounts:
            return None
        marks = ", ".join("?" * len(accounts))
        with self.store._write() as conn:
            row = conn.execute(
                f"SELECT account, seat FROM seats WHERE account IN ({marks})"
                f" AND (runner IS NULL OR (runner NOT IN ({_LIVE}) AND (take_key IS NULL"
                f" OR take_key NOT IN (SELECT key FROM takes WHERE status IN {_IN_FLIGHT}))))"
                " ORDER BY account, seat FOR UPDATE SKIP LOCKED", tuple(accounts)
            ).fetchall()
            if not row:
                return None
            free: dict[str, list[int]] = {}
            for account, seat in row:
                free.setdefault(str(account), []).append(int(seat))
            account = max(free, key=lambda name: (len(free[name]), -accounts.index(name)))
            conn.execute(f"UPDATE seats SET runner = ?, take_key = ?, taken_at = {DB_NOW}"
                         " WHERE account = ? AND seat = ?",
                         (self.id, key, account, free[account][0]))
        return account

    def release_seat(self, key: str) -> None:
        """The task of ``key`` left the provider's queue (or was never created): free its seat."""
        with self.store._write() as conn:
            freed = conn.execute(
                "UPDATE seats SET runner = NULL, take_key = NULL, taken_at = NULL"
                " WHERE take_key = ? AND runner = ?", (key, self.id)).rowcount
            if freed:
                _wake(conn, SEATS_CHANNEL)

    def wake_ups(self) -> AsyncIterator[str]:
        """The channels (:data:`SEATS_CHANNEL`, :data:`CLAIMS_CHANNEL`) as other runners set
        seats and claims free, while iterated."""
        return self.store.notifications((SEATS_CHANNEL, CLAIMS_CHANNEL))

    def seats_in_use(self) -> dict[str, int]:
        """Taken seats per account (for the benchmark and the tests)."""
        rows = self.store._rows(
            "SELECT account, COUNT(take_key) FROM seats GROUP BY account ORDER BY account")
        return {str(row[0]): int(row[1]) for row in rows}

