"""A wait for an event with a timeout always lets a cancel through (Python 3.11's wait_for
with its TimeoutError suppressed did not: a finished team runner never exited)."""

from __future__ import annotations

import asyncio

import pytest

from runner.scheduler.crew import wait_event


async def test_a_cancel_always_ends_a_loop_of_waits_even_as_the_event_fires() -> None:
    """The event set and the task cancelled in the same turns of the loop (another runner's
    NOTIFY arriving as the run ends): ``wait_for`` lost 150 of these 200 cancels."""
    for turns in range(200):
        event = asyncio.Event()

        async def looking(event: asyncio.Event = event) -> None:
            while True:  # as a runner waits for a seat or a released take
                await wait_event(event, 3600)
                event.clear()

        task = asyncio.ensure_future(looking())
        for _ in range(3):
            await asyncio.sleep(0)  # into its wait (a yield, not a timed sleep)
        event.set()
        for _ in range(turns % 4):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def test_the_event_ends_the_wait_before_its_timeout() -> None:
    event = asyncio.Event()
    waiting = asyncio.ensure_future(wait_event(event, 3600))
    await asyncio.sleep(0)
    event.set()
    await asyncio.wait_for(waiting, 10)
