"""The in-flight limiter finds the account's limit (AIMD); the bucket spaces creations."""

from __future__ import annotations

import asyncio

import pytest

from runner.scheduler.limits import AimdLimiter, DownloadSlots, TokenBucket


async def test_limiter_bounds_in_flight_and_serves_waiters_in_order() -> None:
    limiter = AimdLimiter(2)
    await limiter.acquire()
    await limiter.acquire()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == [] and limiter.in_flight == 2
    limiter.release()
    await asyncio.sleep(0)
    assert order == [0]
    limiter.release()
    limiter.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert limiter.in_flight == 2  # five acquired, three released


def test_limiter_halves_on_429_and_never_goes_below_one() -> None:
    limiter = AimdLimiter(8)
    limiter.on_rate_limited()
    assert limiter.limit == 4
    for _ in range(10):
        limiter.on_rate_limited()
    assert limiter.limit == 1


def test_429s_of_requests_sent_together_halve_the_limit_once() -> None:
    limiter = AimdLimiter(16)
    sent_at = limiter.epoch
    for _ in range(8):  # eight creations sent at limit 16 all meet a 429
        limiter.on_rate_limited(sent_at)
    assert limiter.limit == 8
    limiter.on_rate_limited(limiter.epoch)  # one sent after the decrease: halves again
    assert limiter.limit == 4


def test_limiter_grows_by_one_per_window_up_to_where_it_started() -> None:
    limiter = AimdLimiter(4, window=3)
    limiter.on_rate_limited()
    assert limiter.limit == 2
    limiter.on_success()
    limiter.on_success()
    assert limiter.limit == 2
    limiter.on_success()
    assert limiter.limit == 3
    for _ in range(30):
        limiter.on_success()
    assert limiter.limit == 4


async def test_limiter_growth_wakes_a_waiter() -> None:
    limiter = AimdLimiter(2, window=1)
    limiter.on_rate_limited()
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    limiter.on_success()
    await asyncio.wait_for(waiting, 5)
    assert limiter.in_flight == 2


async def test_adopted_tasks_count_against_the_limit() -> None:
    limiter = AimdLimiter(1)
    limiter.adopt()
    limiter.adopt()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()
    await asyncio.sleep(0)
    assert not waiting.done()
    limiter.release()
    await asyncio.wait_for(waiting, 5)


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    limiter = AimdLimiter(1)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limiter.release()
    assert limiter.in_flight == 0
    await limiter.acquire()
    assert limiter.in_flight == 1


def test_release_without_acquire_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        AimdLimiter(1).release()
    with pytest.raises(ValueError):
        AimdLimiter(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spaces_requests_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.reserve() == pytest.approx(0.5)


def test_token_bucket_refills_but_not_beyond_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, burst=2, clock=clock)
    clock.now += 1000
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(1.0)


def test_token_bucket_with_no_rate_never_waits() -> None:
    bucket = TokenBucket(0)
    assert all(bucket.reserve() == 0.0 for _ in range(100))


async def test_download_slots_bound_concurrency() -> None:
    slots = DownloadSlots(2)
    peak = 0
    gate = asyncio.Event()

    async def work() -> None:
        nonlocal peak
        async with slots.slot():
            peak = max(peak, slots.active)
            await gate.wait()

    tasks = [asyncio.create_task(work()) for _ in range(5)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert slots.active == 2 and slots.waiting == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and slots.active == 0


async def test_downloads_go_earliest_link_expiry_first() -> None:
    slots = DownloadSlots(1)
    order: list[float] = []
    blocker = asyncio.Event()

    async def first() -> None:
        async with slots.slot(0):
            await blocker.wait()

    async def work(expiry: float) -> None:
        async with slots.slot(expiry):
            order.append(expiry)

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(work(e)) for e in (300.0, 100.0, 200.0)]
    await asyncio.sleep(0)
    blocker.set()
    await asyncio.gather(holder, *tasks)
    assert order == [100.0, 200.0, 300.0]


async def test_cancelled_download_waiter_does_not_leak() -> None:
    slots = DownloadSlots(1)
    gate = asyncio.Event()

    async def hold() -> None:
        async with slots.slot():
            await gate.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    await holder
    assert slots.active == 0 and slots.waiting == 0
