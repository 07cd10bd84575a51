"""The engine keeps a bounded window of take coroutines, whatever the manifest's size.

A run used to start one coroutine per take at once (20,000 of them for a 20,000-take
manifest, ~3 KB each for the whole run). These tests watch the live take tasks from the
observer while real runs against the emulator are in flight, and check that waiting
dependents neither fill the window nor deadlock it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from runner.emulator import run_emulator
from runner.scheduler.engine import Engine
from runner.scheduler.snapshot import RunProgress
from runner.scheduler.window import TakeWindow, window_size
from runner.state import StateStore, TakeStatus, store_path_for
from tests.helpers.engine import FAST, Shot, fast_emulator, make_manifest, run_engine

INSTANT = {"queue_time": 0.0, "processing_time": 0.0}


def live_take_tasks() -> int:
    """Tasks of this loop driving a take, found by their coroutine (not the engine's word)."""
    return sum(1 for task in asyncio.all_tasks()
               if getattr(task.get_coro(), "__qualname__", "") == "Engine._drive")


async def test_a_large_run_never_has_more_take_tasks_than_its_window(tmp_path: Path) -> None:
    takes = 80
    manifest = make_manifest(tmp_path, [Shot(f"s{n:03d}", f"shot {n}") for n in range(takes)])
    seen: list[int] = []
    windows: list[int] = []

    def watch(engine: Engine, progress: RunProgress) -> None:
        seen.append(live_take_tasks())
        windows.append(engine.window.size)

    async with run_emulator(fast_emulator(**INSTANT)) as emulator:
        out = await run_engine(manifest, emulator.base_url, on_progress=watch)
    assert out.summary.all_done and out.summary.done == takes
    size = window_size(FAST.concurrency, FAST.downloads)
    assert set(windows) == {size} and size < takes
    # Observed while takes were in flight: bounded by the window, and the window was used.
    assert max(seen) <= size
    assert max(seen) > FAST.concurrency
    assert out.progress[-1].done == takes and out.progress[-1].queued == 0


async def test_the_progress_counts_takes_without_a_task_as_queued(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n:02d}", f"shot {n}") for n in range(20)])
    settings = replace(FAST, concurrency=1, downloads=1, window=2)
    first: list[RunProgress] = []

    def watch(engine: Engine, progress: RunProgress) -> None:
        if not first and progress.in_flight:
            first.append(progress)
            assert live_take_tasks() <= 2

    async with run_emulator(fast_emulator(**INSTANT)) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings,
                               on_progress=watch)
    assert out.summary.all_done
    snapshot = first[0]
    assert snapshot.total == 20 and snapshot.in_flight == 1
    assert snapshot.queued + snapshot.in_flight + snapshot.submitting + snapshot.done + \
        snapshot.downloading == 20


async def test_waiting_dependents_do_not_fill_the_window(tmp_path: Path) -> None:
    # Twenty takes wait for shot a; with room for two coroutines, the independent shot c
    # still starts while a renders: the waiting ones have no coroutine.
    shots = [Shot("a", "the source"),
             *(Shot(f"b{n:02d}", f"after a {n}", after=("a",)) for n in range(20)),
             Shot("c", "independent")]
    manifest = make_manifest(tmp_path, shots)
    settings = replace(FAST, concurrency=2, window=2)
    c_while_a_runs: list[bool] = []

    def watch(engine: Engine, progress: RunProgress) -> None:
        phases = engine.ctx.phases
        if phases["c/take-1"].value in ("submitting", "in_flight") and not c_while_a_runs:
            c_while_a_runs.append(phases["a/take-1"].value not in ("done", "failed"))
        assert live_take_tasks() <= 2

    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings,
                               on_progress=watch)
    assert out.summary.all_done and out.summary.done == 22
    assert c_while_a_runs == [True]


async def test_a_dependent_listed_before_its_source_does_not_deadlock_a_window_of_one(
        tmp_path: Path) -> None:
    from tests.helpers.continuity import Shot as ChainShot
    from tests.helpers.continuity import from_shot, manifest_of, run_once

    manifest = manifest_of(tmp_path, [
        ChainShot("later", "waits for every take of first", after=("first",)),
        ChainShot("frame", "starts on first's last frame", start=from_shot("first")),
        ChainShot("first", "the source", takes=2),
    ])
    settings = replace(FAST, window=1)
    async with run_emulator(fast_emulator()) as emulator:
        ran = await asyncio.wait_for(run_once(manifest, emulator.base_url, settings),
                                     timeout=60)
    assert ran.summary.all_done and ran.summary.done == 4
    assert ran.records["frame/take-1"].status is TakeStatus.DONE


async def test_a_stop_leaves_takes_that_never_had_a_task_unsubmitted(tmp_path: Path) -> None:
    takes = 60
    manifest = make_manifest(tmp_path, [Shot(f"s{n:02d}", f"shot {n}") for n in range(takes)])
    settings = replace(FAST, concurrency=2, downloads=1, window=4)
    stopped: list[int] = []

    def stop_after_first(engine: Engine, progress: RunProgress) -> None:
        if progress.done and not stopped:
            stopped.append(engine.request_stop())

    async with run_emulator(fast_emulator(**INSTANT)) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings,
                               on_progress=stop_after_first)
        created = emulator.stats()["accepted_tasks"]
        again = await run_engine(manifest, emulator.base_url, settings=settings)
        total = emulator.stats()["accepted_tasks"]
    summary = out.summary
    assert summary.stopped_reason == "interrupted"
    assert summary.done + len(summary.in_flight) + len(summary.not_started) == takes
    assert len(summary.not_started) >= takes - 4 - summary.done
    never = [key for key in summary.not_started
             if out.store_records[key].status is TakeStatus.NEW]
    assert len(never) >= takes - 4 - summary.done
    # Nothing was paid twice: the next run created exactly the takes that had no task.
    assert again.summary.all_done and total - created == takes - created


async def test_a_resumed_run_polls_adopted_tasks_before_submitting_new_ones(
        tmp_path: Path) -> None:
    # More tasks found in flight than the window holds: they hold every in-flight slot, so
    # they must get their coroutines first, or the new takes would wait for slots forever.
    manifest = make_manifest(tmp_path, [Shot(f"s{n:02d}", f"shot {n}") for n in range(12)])
    settings = replace(FAST, concurrency=2, downloads=1, window=3)
    async with run_emulator(fast_emulator(**INSTANT)) as emulator:
        from runner.providers.gateway.client import GatewayClient
        from runner.wire.payload import build_payload, fingerprint_resolver
        from tests.helpers.engine import KEY


        store = StateStore.open(store_path_for(manifest))
        try:
            store.sync(manifest.takes)
            async with GatewayClient(emulator.base_url, emulator.base_url, KEY) as client:
                for take in manifest.takes[6:]:
                    payload = build_payload(take.request, fingerprint_resolver)
                    store.mark_submitting(take.key, payload, 24.3)
                    state = await client.create_task(payload)
                    store.mark_submitted(take.key, state.task_id, state.credits_reserved,
                                         state.estimated_time)
        finally:
            store.close()
        out = await asyncio.wait_for(
            run_engine(manifest, emulator.base_url, settings=settings), timeout=60)
        stats = emulator.stats()
    assert out.summary.all_done and out.summary.done == 12
    assert stats["accepted_tasks"] == 12  # the six adopted ones were collected, not redone
    assert sorted(p.action for p in out.plans.values()) == ["poll"] * 6 + ["submit"] * 6


def test_a_window_must_hold_a_take() -> None:
    with pytest.raises(ValueError):
        TakeWindow(0, blockers=lambda index: (), spawn=lambda index: None,  # type: ignore
                   halted=lambda: False)
