"""The accounts a run creates with, and, for a team's runner, its claims, seats and lease.

A run sends each creation with one provider account's key (``api.accounts``; one implicit
account when the manifest names none) and polls and downloads its task with that same key:
a task belongs to the account that created it. :class:`Crew` holds the client of every
account this runner has a key for and hands out *seats*: a creation takes a seat of an
account with room and keeps it while its task is in flight.

Alone (the embedded store) the seats are counted here, in memory. In a team (a PostgreSQL
store, :class:`runner.state.team.Team`) they are rows in the database shared by every runner,
so that an account's concurrency holds across machines, and the crew also keeps this runner's
lease alive and says which takes other runners hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from runner.state.protocol import Store
from runner.state.team import Team
from runner.wire.protocol import Gateway

log = structlog.get_logger()

#: How often a team's runner looks again for a seat, or for takes other runners let go.
TEAM_POLL = 1.0


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Until ``event`` is set or ``timeout`` seconds pass, whichever comes first.

    Not ``asyncio.wait_for`` with its ``TimeoutError`` suppressed: on Python 3.11 a cancel
    arriving as the timeout fires is turned into that ``TimeoutError``, and the loop around it
    went on for ever, cancelled in name only (a team's runner that had finished never
    exited). ``asyncio.wait`` always lets a cancel through.
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


@dataclass
class SeatAccount:
    """One provider account this runner can send with."""

    name: str
    client: Gateway
    concurrency: int


@dataclass
class Crew:
    """Accounts, seats and (in a team) the runner's membership."""

    accounts: list[SeatAccount]
    team: Team | None = None
    poll: float = TEAM_POLL
    _taken: dict[str, int] = field(default_factory=dict)  # alone: seats taken per account
    _seat_of: dict[str, str] = field(default_factory=dict)  # take key -> account (this run)
    _freed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._by_name = {account.name: account for account in self.accounts}
        if self.team is not None:
            self.team.provide_seats({a.name: a.concurrency for a in self.accounts})

    @property
    def shared(self) -> bool:
        """True for a team's runner (its ledger, claims and seats are shared)."""
        return self.team is not None

    @property
    def names(self) -> list[str]:
        return [account.name for account in self.accounts]

    def client(self, account: str | None) -> Gateway:
        """The client of ``account`` (None: a task recorded before accounts: the first)."""
        found = self._by_name.get(account or "") if account else None
        return (found or self.accounts[0]).client

    def account_of(self, key: str, store: Store) -> str | None:
        """The account of ``key``'s task: the seat it took in this run, else its record's."""
        account = self._seat_of.get(key)
        if account is None:
            account = store.record(key).account
        return account

    def can_serve(self, account: str | None) -> bool:
        """True when this runner holds the key of ``account`` (None: any runner can)."""
        return account is None or account in self._by_name

    # ----------------------------------------------------------------- seats
    async def take_seat(self, key: str, stopped: Callable[[], bool]) -> str | None:
        """A seat for ``key``'s creation (its account), waiting while none is free; None
        once ``stopped()``."""
        while not stopped():
            account = self._try_seat(key)
            if account is not None:
                self._seat_of[key] = account
                return account
            self._freed.clear()
            # Woken by a seat freed here or announced by another runner, else look again.
            await wait_event(self._freed, self.poll)
        return None

    def _try_seat(self, key: str) -> str | None:
        if self.team is not None:
            return self.team.take_seat(key, self.names)
        free = [a for a in self.accounts if self._taken.get(a.name, 0) < a.concurrency]
        if not free:
            return None
        account = max(free, key=lambda a: a.concurrency - self._taken.get(a.name, 0))
        self._taken[account.name] = self._taken.get(account.name, 0) + 1
        return account.name

    def wake(self) -> None:
        """Another runner freed a seat: the creations waiting for one look at once."""
        self._freed.set()

    def release_seat(self, key: str) -> None:
        """``key``'s task left the provider's queue (or was never created)."""
        account = self._seat_of.pop(key, None)
        if self.team is not None:
            self.team.release_seat(key)
        elif account is not None:
            self._taken[account] -= 1
        self._freed.set()

    def adopt_seat(self, key: str, account: str | None) -> None:
        """A take already in flight at ``account`` counts against its seats (alone: in memory;
        in a team its seat row came with the claim)."""
        if account is None or account not in self._by_name:
            return
        self._seat_of[key] = account
        if self.team is None:
            self._taken[account] = self._taken.get(account, 0) + 1

