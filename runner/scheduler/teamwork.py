"""A team's runner inside the engine: which takes it claims, which it leaves, its heartbeat.

The engine's window (:mod:`runner.scheduler.window`) starts takes in order; for a team's
runner a take first has to be *claimed* (:meth:`runner.state.team.Team.claim`, which plans it
again from its record: another runner may have moved it since this run's start). A take that
another live runner holds is parked, as a take waiting for a dependency is, on a key of its
own (``@`` + its key): it takes no room in the window, and it is put back in line when the
heartbeat sees its claim gone (finished, given up at a stop, or its runner's lease run out).

The heartbeat (:meth:`TeamWork.watch`) renews this runner's lease and unparks released takes,
looking when another runner's ``NOTIFY`` says a claim was let go (:meth:`TeamWork.listen`) or
every ``--team-poll`` seconds;
a runner whose lease ran out anyway (a machine asleep, a network cut longer than the lease)
stops at once: another runner may hold its takes now, and the store refuses its creations. A
database out of reach for longer than the lease stops the run as a failing store does (one
line, exit 4): a runner waiting for others' takes would otherwise wait for ever, blind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from runner.core.errors import StateError
from runner.core.redact import redact
from runner.scheduler.crew import wait_event
from runner.state.records import TakePlan
from runner.state.team import SEATS_CHANNEL, Team, live_claims

log = structlog.get_logger()

LISTEN_AGAIN = 2.0  # seconds before a failed listening connection is opened again
ELSEWHERE = "@"  # the prefix of the key a take held by another runner is parked on


def parked_key(key: str) -> str:
    """The window key a take held elsewhere waits on."""
    return ELSEWHERE + key


class TeamWork:
    """The engine's side of a :class:`Team`: claims in order, releases, the heartbeat."""

    def __init__(self, team: Team, *, poll: float, wait: bool,
                 seat_freed: Callable[[], None] = lambda: None) -> None:
        self.team = team
        self.poll = poll
        self.wait = wait  # wait for other runners' takes once nothing is left to claim
        self.elsewhere: set[str] = set()  # takes parked because another runner holds them
        self._seat_freed = seat_freed
        self._claims_moved = asyncio.Event()

    async def listen(self) -> None:
        """Wake the waits when another runner frees a seat or a claim (``LISTEN``). A
        listening connection that fails (the database restarted) is logged and opened again
        after a pause; meanwhile the waits look every ``poll``. Any wake-up missed meanwhile
        is only a later look, never a wrong one."""
        while True:
            try:
                async for channel in self.team.wake_ups():
                    if channel == SEATS_CHANNEL:
                        self._seat_freed()
                    else:
                        self._claims_moved.set()
            except Exception as exc:  # psycopg's errors, OSError: polling still works
                log.warning("team_listen_failed", error=redact(str(exc))[:300])
            await asyncio.sleep(LISTEN_AGAIN)

    def claim(self, key: str) -> TakePlan | None:
        """The take's plan now, when this runner got it; None (and parked) when it did not."""
        plan = self.team.claim(key)
        if plan is None:
            self.elsewhere.add(key)
            return None
        self.elsewhere.discard(key)
        return plan

    def holds(self, key: str) -> bool:
        return key in self.team.mine

    def release(self, key: str) -> None:
        """Let the take go (its state is committed); a failing database is only logged: the
        claim ends with the lease anyway."""
        try:
            self.team.release(key)
        except StateError as exc:
            log.warning("claim_not_released", take=key, error=str(exc))

    def taken_over(self, key: str) -> bool:
        """True when this runner no longer holds ``key`` (its lease ran out and another
        runner took the take over): a move the store refused is then that runner's doing."""
        try:
            return not self.team.still_holds(key)
        except StateError:
            return False

    def waiting(self) -> bool:
        """True while other runners hold takes this run would do, and it waits for them."""
        return self.wait and bool(self.elsewhere)

    async def watch(self, unpark: Callable[[list[str]], None],
                    lost_lease: Callable[[str], None],
                    store_failed: Callable[[StateError], None]) -> None:
        """Renew the lease and put released takes back in line, until cancelled (or the
        database has been out of reach for a whole lease: ``store_failed``)."""
        # Renewed three times a lease, whatever --team-poll says (a look every 30 s must not
        # let a 30 s lease run out between two renewals).
        renew_every = self.team.lease / 3
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await wait_event(self._claims_moved, min(self.poll, renew_every))
            self._claims_moved.clear()
            try:
                if loop.time() - renewed >= renew_every:
                    if not self.team.renew():
                        lost_lease("this runner's lease ran out (was the machine asleep or "
                                   "the database out of reach?): other runners may hold its "
                                   "takes now; run it again to rejoin (it spends only on "
                                   "takes never created)")
                        return
                    renewed = loop.time()
                if self.elsewhere:
                    with self.team.store._read() as conn:
                        held = live_claims(conn, self.team.id)
                    released = sorted(self.elsewhere - held)
                    if released:
                        self.elsewhere.difference_update(released)
                    unpark(released)
            except StateError as exc:
                log.warning("team_watch_failed", error=str(exc))
                if loop.time() - renewed >= self.team.lease:
                    store_failed(exc)
                    return

    @staticmethod
    async def stop(task: asyncio.Task[None] | None) -> None:
        """End the heartbeat (a defect it met was raised by the run already)."""
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
