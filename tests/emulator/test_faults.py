"""Injected faults behave like a real gateway's bad nights, and the counters see everything."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from runner.emulator import RunningEmulator
from tests.emulator.conftest import create, payload, wait_for_status


async def test_concurrency_cap_answers_429_with_retry_after_until_a_slot_frees(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(concurrency_cap=2, queue_time=0.0, processing_time=1.0)
    first = await create(http)
    await create(http)
    async with http.post("/v1/videos/generations", json=payload()) as response:
        body = await response.json()
        assert response.status == 429
        assert body["error"]["type"] == "rate_limit_error"
        assert int(response.headers["Retry-After"]) >= 1
    await wait_for_status(http, first["id"])
    await create(http)  # a slot is free again
    stats = emulator.stats()
    assert stats["max_in_flight"] == 2 and stats["rate_limited"] == 1
    assert stats["accepted_tasks"] == 3 and stats["creation_requests"] == 4


async def test_retry_after_can_be_configured(emulator: RunningEmulator,
                                             http: aiohttp.ClientSession) -> None:
    emulator.update(concurrency_cap=1, queue_time=30.0, retry_after=0.25)
    await create(http)
    async with http.post("/v1/videos/generations", json=payload()) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "0.25"


async def test_resets_drop_queries_without_an_answer(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    task = await create(http)
    emulator.update(reset_rate=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"/v1/tasks/{task['id']}") as response:
            await response.read()
    assert emulator.stats()["resets"] >= 1


async def test_reset_creations_are_really_ambiguous(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(reset_rate=1.0, queue_time=30.0)
    attempts = 24
    for number in range(attempts):
        # A fresh connection each time, so the client cannot silently retry the POST.
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.post("/v1/videos/generations", json=payload(prompt=f"shot {number}"),
                                 headers={"Connection": "close"}) as response:
                await response.read()
    stats = emulator.stats()
    assert stats["resets"] == attempts and stats["creation_requests"] == attempts
    # Some were created before the reset, some not: the client cannot tell which.
    assert 0 < stats["accepted_tasks"] < attempts


async def test_a_fixed_seed_replays_the_same_faults(emulator: RunningEmulator,
                                                    http: aiohttp.ClientSession) -> None:
    async def statuses() -> list[int]:
        emulator.update(seed=None)
        emulator.update(seed=1234, error_rates={"503": 0.5}, queue_time=30.0)
        seen = []
        for _ in range(16):
            async with http.post("/v1/videos/generations", json=payload()) as response:
                seen.append(response.status)
        return seen

    first = await statuses()
    assert set(first) == {200, 503}
    assert await statuses() == first


async def test_jitter_spreads_task_times(emulator: RunningEmulator,
                                         http: aiohttp.ClientSession) -> None:
    emulator.update(queue_time=10.0, processing_time=10.0, jitter=0.5)
    ids = [(await create(http))["id"] for _ in range(6)]
    board = emulator.core.board
    queues = {board.get(i).queue for i in ids}  # type: ignore[union-attr]
    assert len(queues) == 6 and all(5.0 <= q <= 15.0 for q in queues)


async def test_stats_count_creations_duplicates_polls_and_in_flight(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(queue_time=0.0, processing_time=0.05)
    first = await create(http, prompt="same")
    await create(http, prompt="same")  # the same canonical body again
    await create(http, prompt="other")
    async with http.post("/v1/videos/generations", json=payload(duration=99)) as response:
        assert response.status == 400
    done = await wait_for_status(http, first["id"])
    async with http.get(done["results"][0]) as response:
        await response.read()
    async with aiohttp.ClientSession(base_url=emulator.base_url) as bare, \
            bare.get("/_emulator/stats") as response:
        over_http = await response.json()
    stats = emulator.stats()
    assert over_http == stats
    assert stats["creation_requests"] == 4 and stats["accepted_tasks"] == 3
    assert stats["duplicate_payloads"] == 1
    assert stats["polls"] == stats["polls_per_task"][first["id"]] >= 1
    assert stats["max_in_flight"] >= 1 and stats["downloads"] == 1
    for key in ("uploads", "expired_link_hits", "rate_limited", "resets", "truncated"):
        assert stats[key] == 0


async def test_the_server_stays_responsive_while_rendering(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(queue_time=0.0, processing_time=0.0)
    ids = [(await create(http, duration=15))["id"] for _ in range(3)]
    # While long clips render in threads, queries keep being answered (as processing).
    async with http.get(f"/v1/tasks/{ids[-1]}") as response:
        assert response.status == 200
        assert (await response.json())["status"] in ("processing", "completed")
    results = await asyncio.gather(*(wait_for_status(http, i) for i in ids))
    assert [r["status"] for r in results] == ["completed"] * 3


async def test_running_out_of_credits_answers_402(emulator: RunningEmulator,
                                                  http: aiohttp.ClientSession) -> None:
    emulator.update(credits=60.0, queue_time=30.0)
    await create(http, duration=5)  # 40.5 reserved
    async with http.post("/v1/videos/generations", json=payload(duration=3)) as response:
        body = await response.json()  # 24.3 more would pass 60
    assert response.status == 402
    assert body["error"]["type"] == "insufficient_quota_error"
    stats = emulator.stats()
    assert stats["accepted_tasks"] == 1 and stats["credits_reserved"] == 40.5
