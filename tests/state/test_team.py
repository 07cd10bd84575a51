"""Claims, leases, seats and the shared budget of a team's store (two runners, one database)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import psycopg
import pytest

from runner.state import TakeAction, TakeStatus
from runner.state.pgstore import PgStore
from runner.state.team import CLAIMS_CHANNEL, SEATS_CHANNEL, Team
from runner.state.transitions import BudgetRefused, ClaimLost
from tests.helpers.state import make_take, payloads

KEYS = ("s01/take-1", "s02/take-1", "s03/take-1")


@pytest.fixture
def runners(pg_url: str) -> Iterator[tuple[Team, Team]]:
    takes = [make_take(key.split("/")[0]) for key in KEYS]
    stores = [PgStore.open_url(pg_url), PgStore.open_url(pg_url)]
    teams = (Team(stores[0]), Team(stores[1]))
    for team in teams:
        team.join()
        team.store.sync(takes, payloads(takes))
    yield teams
    for store in stores:
        store.close()


def _die(url: str, team: Team) -> None:
    """The runner's lease runs out (as when its process was killed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE runners SET lease_until = 0 WHERE id = %s", (team.id,))


def test_a_take_is_claimed_by_one_runner_at_a_time(runners: tuple[Team, Team]) -> None:
    a, b = runners
    plan = a.claim(KEYS[0])
    assert plan is not None and plan.action is TakeAction.SUBMIT
    assert b.claim(KEYS[0]) is None
    a.release(KEYS[0])
    assert b.claim(KEYS[0]) is not None


def test_a_dead_runner_s_creation_is_taken_over_as_ambiguous_never_created_again(
    runners: tuple[Team, Team], pg_url: str,
) -> None:
    a, b = runners
    assert a.claim(KEYS[0]) is not None
    a.store.mark_submitting(KEYS[0], {"p": 1}, 10.0)
    assert b.claim(KEYS[0]) is None  # alive: its creation is on the wire
    _die(pg_url, a)
    plan = b.claim(KEYS[0])
    assert plan is not None
    assert plan.record.status in (TakeStatus.AMBIGUOUS, TakeStatus.HELD)
    assert plan.action is TakeAction.HOLD  # the team's default: counted and held
    assert b.store.totals()["ambiguous_submissions"] == 1
    with pytest.raises(ClaimLost):  # the dead runner cannot create what b holds
        a.store.mark_submitting(KEYS[1], {"p": 1}, 10.0)


def test_a_dead_runner_s_task_is_collected_by_its_id(
    runners: tuple[Team, Team], pg_url: str,
) -> None:
    a, b = runners
    a.claim(KEYS[1])
    a.store.mark_submitting(KEYS[1], {"p": 1}, 10.0)
    a.store.mark_submitted(KEYS[1], "task-7")
    _die(pg_url, a)
    plan = b.claim(KEYS[1])
    assert plan is not None and plan.action is TakeAction.POLL
    assert plan.record.task_id == "task-7" and plan.record.attempts == 1


def test_sync_leaves_a_live_runner_s_creation_alone(runners: tuple[Team, Team]) -> None:
    a, b = runners
    a.claim(KEYS[0])
    a.store.mark_submitting(KEYS[0], {"p": 1}, 10.0)
    takes = [make_take(key.split("/")[0]) for key in KEYS]
    b.store.sync(takes, payloads(takes))
    assert b.store.record(KEYS[0]).status is TakeStatus.SUBMITTING


def test_a_live_runner_s_creation_is_not_planned_as_ambiguous(
    runners: tuple[Team, Team],
) -> None:
    """Its answer is not lost, only not back yet: a runner starting beside it must not count
    it ("ambiguous submissions: 1 (each may have been billed)" in its summary)."""
    a, b = runners
    a.claim(KEYS[0])
    a.store.mark_submitting(KEYS[0], {"p": 1}, 10.0)
    takes = [make_take(key.split("/")[0]) for key in KEYS]
    plans = {plan.key: plan for plan in b.store.sync(takes, payloads(takes))}
    assert plans[KEYS[0]].reason == "held by another runner"


def test_seats_never_exceed_an_account_s_concurrency_and_come_back(
    runners: tuple[Team, Team], pg_url: str,
) -> None:
    a, b = runners
    a.provide_seats({"studio": 2})
    assert a.take_seat(KEYS[0], ["studio"]) == "studio"
    assert b.take_seat(KEYS[1], ["studio"]) == "studio"
    assert b.take_seat(KEYS[2], ["studio"]) is None
    assert a.seats_in_use() == {"studio": 2}
    a.release_seat(KEYS[0])
    assert b.take_seat(KEYS[2], ["studio", "other"]) == "studio"
    assert b.take_seat(KEYS[0], ["other"]) is None  # no key for it: never its seats
    _die(pg_url, b)  # b's takes were never created: its seats are free again
    assert a.take_seat(KEYS[0], ["studio"]) == "studio"


def test_a_dead_runner_s_seat_stays_taken_while_its_task_renders(
    runners: tuple[Team, Team], pg_url: str,
) -> None:
    a, b = runners
    a.provide_seats({"studio": 1})
    a.claim(KEYS[0])
    assert a.take_seat(KEYS[0], ["studio"]) == "studio"
    a.store.mark_submitting(KEYS[0], {"p": 1}, 10.0, account="studio")
    a.store.mark_submitted(KEYS[0], "task-1")
    _die(pg_url, a)
    assert b.take_seat(KEYS[1], ["studio"]) is None
    b.claim(KEYS[0])  # taken over with its seat
    b.release_seat(KEYS[0])
    assert b.take_seat(KEYS[1], ["studio"]) == "studio"


def test_racing_runners_never_commit_more_than_the_cap(pg_url: str) -> None:
    takes = [make_take(f"s{n:02}") for n in range(12)]
    stores = [PgStore.open_url(pg_url) for _ in range(3)]
    stores[0].sync(takes, payloads(takes))
    refused: list[str] = []
    start = threading.Barrier(3)

    def runner(store: PgStore, keys: list[str]) -> None:
        start.wait()
        for key in keys:
            try:
                store.mark_submitting(key, {"p": 1}, 10.0, cap=55.0)
            except BudgetRefused:
                refused.append(key)

    keys = [take.key for take in takes]
    threads = [threading.Thread(target=runner, args=(store, keys[n::3]))
               for n, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stores[0].credits_committed() == 50.0
    assert len(refused) == 7
    for store in stores:
        store.close()


def test_a_lease_that_ran_out_is_not_renewed(runners: tuple[Team, Team], pg_url: str) -> None:
    a, b = runners
    assert a.renew()
    _die(pg_url, a)
    assert not a.renew()  # the runner learns it: its heartbeat stops the run
    assert b.renew()
    assert b.view().runners == 1


def test_a_dead_runner_s_seat_comes_back_when_its_take_is_no_longer_in_flight(
    runners: tuple[Team, Team], pg_url: str,
) -> None:
    """Its creation's answer was lost: taken over, the take is ambiguous (held), not in
    flight, so its seat is free again. It used to follow the take to the new runner and stay
    taken for good: with one seat, that runner waited for ever."""
    a, b = runners
    a.provide_seats({"studio": 1})
    a.claim(KEYS[0])
    assert a.take_seat(KEYS[0], ["studio"]) == "studio"
    a.store.mark_submitting(KEYS[0], {"p": 1}, 10.0)
    _die(pg_url, a)
    plan = b.claim(KEYS[0])
    assert plan is not None and plan.action is TakeAction.HOLD
    assert b.seats_in_use() == {"studio": 0}
    assert b.take_seat(KEYS[1], ["studio"]) == "studio"


def test_a_dead_runner_s_task_in_flight_keeps_its_seat_with_the_new_runner(
    runners: tuple[Team, Team], pg_url: str,
) -> None:
    a, b = runners
    a.provide_seats({"studio": 1})
    a.claim(KEYS[0])
    assert a.take_seat(KEYS[0], ["studio"]) == "studio"
    a.store.mark_submitting(KEYS[0], {"p": 1}, 10.0)
    a.store.mark_submitted(KEYS[0], "task-9")
    _die(pg_url, a)
    plan = b.claim(KEYS[0])
    assert plan is not None and plan.action is TakeAction.POLL
    assert b.take_seat(KEYS[1], ["studio"]) is None  # still rendering: its seat is taken
    b.release_seat(KEYS[0])
    assert b.take_seat(KEYS[1], ["studio"]) == "studio"


async def test_a_freed_seat_or_claim_wakes_the_other_runners(
    runners: tuple[Team, Team],
) -> None:
    a, b = runners
    a.provide_seats({"studio": 1})
    wake_ups = b.wake_ups()
    heard = asyncio.ensure_future(anext(wake_ups))
    while not heard.done():  # until b's LISTEN is in place: each round notifies again
        assert a.take_seat(KEYS[0], ["studio"]) == "studio"
        a.release_seat(KEYS[0])
        await asyncio.wait({heard}, timeout=0.05)
    assert heard.result() == SEATS_CHANNEL
    assert a.claim(KEYS[1]) is not None
    a.release(KEYS[1])
    while await asyncio.wait_for(anext(wake_ups), 10) != CLAIMS_CHANNEL:
        pass  # seats freed by the rounds above, heard first
    await wake_ups.aclose()
