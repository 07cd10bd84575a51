"""The budget under a real creation pace: a take that fits is sent, an unsent one costs nothing.

A reviewer found a run with room for two takes render only one: the second take had reserved
its credits and was waiting for its turn at the pace (``submit_rate``) when the third take did
not fit and stopped submissions, which dropped the second one too. These runs use a pace slow
enough that takes really wait for it (every take has its in-flight slot at once), against the
real emulator; the summary and the store must agree on what was spent.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from runner.emulator import run_emulator
from runner.scheduler.engine import Engine
from runner.scheduler.snapshot import RunProgress
from runner.state import TakeStatus
from runner.wire.payload import estimate_credits
from tests.helpers.engine import FAST, Shot, fast_emulator, make_manifest, run_engine, store_totals

# 720p, 5 s: 40.5 credits on the default rates; two fit in 100, three do not.
PACED = replace(FAST, submit_rate=10.0, concurrency=4, max_credits=100.0)


async def test_a_take_that_fits_is_submitted_though_it_waited_for_the_pace(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s1", "a lighthouse", takes=2, duration=5),
                                        Shot("s2", "waves on rocks", takes=2, duration=5)],
                             max_credits=100)
    cost = estimate_credits(manifest.takes[0].request, manifest.budget.rates)
    assert cost == pytest.approx(40.5)
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=PACED)
        stats = emulator.stats()
    summary = out.summary
    assert summary.done == 2, summary
    assert stats["accepted_tasks"] == 2 and stats["creation_requests"] == 2
    assert summary.credits_run == pytest.approx(81.0)
    assert summary.credits_total == pytest.approx(81.0) and summary.credits_total <= 100
    assert summary.stopped_reason == "budget"
    message = summary.stopped_message or ""
    assert "81.0 of 100 credits reserved" in message and "s2/take-1" in message
    assert sorted(summary.not_started) == ["s2/take-1", "s2/take-2"]
    assert not summary.failed and not summary.in_flight
    records = out.store_records
    assert records["s1/take-1"].status is TakeStatus.DONE
    assert records["s1/take-2"].status is TakeStatus.DONE
    assert records["s2/take-1"].status is TakeStatus.NEW
    assert records["s2/take-2"].status is TakeStatus.NEW
    assert store_totals(manifest)["credits_committed"] == pytest.approx(81.0)
    # Never more than the cap reserved at any moment of the run.
    assert max(p.credits_reserved for p in out.progress) <= 100


async def test_a_take_stopped_while_it_waits_for_the_pace_holds_no_credits(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"p{n}", duration=5) for n in range(4)],
                             max_credits=1000)
    settings = replace(PACED, max_credits=1000.0, submit_rate=4.0)

    def stop_after_first(engine: Engine, progress: RunProgress) -> None:
        if progress.in_flight and not progress.stopping:
            engine.request_stop()  # Ctrl-C: the others are waiting for their turn

    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings,
                               on_progress=stop_after_first)
        stats = emulator.stats()
    summary = out.summary
    assert summary.stopped_reason == "interrupted"
    assert stats["creation_requests"] == 1
    assert len(summary.not_started) == 3
    # Only the take that was sent counts, in the summary as in the store.
    assert summary.credits_run == pytest.approx(40.5)
    assert summary.credits_total == pytest.approx(store_totals(manifest)["credits_committed"])
    assert out.progress[-1].credits_reserved == pytest.approx(40.5)


async def test_a_refused_creation_gives_its_credits_back_to_the_takes_after_it(
        tmp_path: Path) -> None:
    # The gateway refuses the first take (400: @Image2 without images); its reservation
    # must not keep the two takes after it, which fit the cap together, from going. One
    # take at a time: a creation on the wire rightly holds its credits (it may be billed),
    # so with several at once the outcome would depend on how fast the refusal comes back.
    manifest = make_manifest(tmp_path, [Shot("s0", "@Image2 on a wall", duration=5),
                                        Shot("s1", "a lighthouse", takes=2, duration=5),
                                        Shot("s2", "waves on rocks", duration=5)],
                             max_credits=100)
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url,
                               settings=replace(PACED, concurrency=1))
        stats = emulator.stats()
    summary = out.summary
    assert [f.key for f in summary.failed] == ["s0/take-1"]
    assert summary.done == 2 and stats["accepted_tasks"] == 2
    assert summary.credits_run == pytest.approx(81.0)
    assert summary.stopped_reason == "budget"
    assert summary.not_started == ("s2/take-1",)
    assert store_totals(manifest)["credits_committed"] == pytest.approx(81.0)
