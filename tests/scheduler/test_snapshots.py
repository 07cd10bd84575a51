"""Progress snapshots: one per loop turn however many changes it saw, and the last one exact.

The engine marks a snapshot due on every change and hands out one at the end of the loop
turn; when the run ends it sends the final state at once, so a display (the live panel, the
plain lines, ``--json``) never shows a state the run has left.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

from runner.emulator import run_emulator
from runner.providers.gateway.client import GatewayClient
from runner.scheduler.engine import Engine
from runner.scheduler.run_context import RECENT_DURATIONS, Durations, Phase
from runner.scheduler.snapshot import RunProgress
from runner.state import StateStore, store_path_for
from runner.wire.payload import build_payload, fingerprint_resolver
from tests.helpers.engine import (
    FAST,
    KEY,
    Shot,
    fast_emulator,
    make_manifest,
    run_engine,
    wait_until,
)

INSTANT = {"queue_time": 0.0, "processing_time": 0.0}


async def test_changes_in_one_loop_turn_make_one_snapshot_and_the_last_is_exact(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s1", "a slow one")])
    seen: list[RunProgress] = []
    store = StateStore.open(store_path_for(manifest))
    try:
        payloads = {t.key: build_payload(t.request, fingerprint_resolver) for t in manifest.takes}
        plans = store.sync(list(manifest.takes), payloads)
        async with run_emulator(fast_emulator(processing_time=30)) as emulator:
            client = GatewayClient(emulator.base_url, emulator.base_url, KEY)
            try:
                engine = Engine(manifest, store, client, plans, FAST, observer=seen.append,
                                upload_namespace=emulator.base_url)
                running = asyncio.create_task(engine.run())
                await wait_until(lambda: engine.ctx.phases.count(Phase.IN_FLIGHT) == 1)
                before = len(seen)
                for _ in range(5):
                    engine.ctx.notify()
                assert len(seen) == before  # due, not sent: the turn is not over
                await asyncio.sleep(0)  # one turn of the loop, not a wait for time
                assert len(seen) == before + 1
                assert seen[-1].in_flight == 1
                engine.request_stop()  # the task keeps rendering: left for the next run
                summary = await running
            finally:
                await client.close()
    finally:
        store.close()
    assert summary.in_flight == ("s1/take-1",)
    # The take left the gateway's care in this run after the last change was announced:
    # the final snapshot still shows where the run ended, not where it was a turn before.
    assert seen[-1] == engine.progress()
    assert seen[-1].in_flight == 0 and seen[-1].stopping


async def test_the_last_snapshot_of_a_full_run_counts_every_take(tmp_path: Path) -> None:
    takes = 12
    manifest = make_manifest(tmp_path, [Shot(f"s{n:02d}", f"shot {n}") for n in range(takes)])
    async with run_emulator(fast_emulator(**INSTANT)) as emulator:
        out = await run_engine(manifest, emulator.base_url)
    assert out.summary.all_done
    last = out.progress[-1]
    assert (last.total, last.done, last.failed) == (takes, takes, 0)
    assert (last.queued, last.submitting, last.in_flight, last.downloading) == (0, 0, 0, 0)
    assert len(last.durations) == takes and last.credits_reserved == out.summary.credits_total
    for snapshot in out.progress:  # never a half-made state
        assert snapshot.total == takes == (snapshot.done + snapshot.failed + snapshot.queued +
                                           snapshot.submitting + snapshot.in_flight +
                                           snapshot.downloading + snapshot.held)
    # The task times are copied when a task completed since the last snapshot, else shared.
    for earlier, later in zip(out.progress, out.progress[1:], strict=False):
        if earlier.durations == later.durations:
            assert earlier.durations is later.durations


def test_durations_move_their_version_on_every_addition() -> None:
    times = Durations()
    assert times.maxlen == RECENT_DURATIONS and times.version == 0
    times.append(1.0)
    times.extend([2.0, 3.0])
    assert list(times) == [1.0, 2.0, 3.0] and times.version == 2
    twin = copy.copy(times)
    assert isinstance(twin, Durations) and list(twin) == [1.0, 2.0, 3.0]
    small = Durations(maxlen=2)
    for value in (1.0, 2.0, 2.0):
        small.append(value)
    assert list(small) == [2.0, 2.0] and small.version == 3
