"""Resume guarantees hold for chains: a dependent with a task id is collected, never resubmitted,
and picks outlive any number of runs."""

from __future__ import annotations

from pathlib import Path

from runner.emulator import run_emulator
from runner.state import StateStore, TakeStatus, continuity, store_path_for
from tests.helpers.continuity import (
    Shot,
    from_shot,
    full_emulator,
    manifest_of,
    run_once,
    run_until,
)


async def test_a_dependent_stopped_in_flight_is_collected_not_resubmitted(
        tmp_path: Path) -> None:
    shots = [Shot("s01", "a lighthouse at dawn", takes=2),
             Shot("s02", "the keeper climbs the stairs", start=from_shot("s01")),
             Shot("s03", "the lamp turns on", start=from_shot("s02"))]
    manifest = manifest_of(tmp_path, shots)
    async with run_emulator(full_emulator(processing_time=0.3)) as emulator:
        first = await run_until(manifest, emulator.base_url, stop_when="s02/take-1")
        assert first.summary.stopped_reason == "interrupted"
        s02 = first.records["s02/take-1"]
        assert s02.task_id is not None and s02.status is not TakeStatus.DONE
        assert first.records["s03/take-1"].status is TakeStatus.NEW
        with StateStore.open(store_path_for(manifest)) as store:
            # A pick made between runs: the take s02 started from, chosen explicitly now.
            done = continuity.choose([r for r in store.records() if r.shot_id == "s01"], None)
            assert done is not None
            continuity.set_pick(store, "s01", done.take, done.sha256)
        before = emulator.stats()["creation_requests"]
        second = await run_once(manifest, emulator.base_url)
        after = emulator.stats()["creation_requests"]
    assert second.plans["s02/take-1"].action in ("poll", "download")
    assert second.summary.all_done
    assert after - before == 1  # only s03 was created; s02's task was collected
    assert second.records["s02/take-1"].task_id == s02.task_id
    with StateStore.open_readonly(store_path_for(manifest)) as store:
        assert continuity.picks(store)["s01"].take == done.take
        used = continuity.frame_hashes(store)
    assert used["s02/take-1"] == {"s01": done.sha256}
    assert used["s03/take-1"] == {"s02": second.records["s02/take-1"].sha256}
