"""The run's calibration of first looks: measured ends in, aims out; then one real run.

A task here is only its end (seconds after creation on the client's clock): a look at ``t``
finds it done when ``t >= end``, else processing at ``int(100 t / end)`` % (or with no
progress at all). :func:`_watch` plays one task's looks through an :class:`Aim` exactly as
``collect._poll`` does, so these tests check the learning loop, censoring included, without
timing anything. The last test runs the engine against the emulator and counts its polls.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runner.emulator import run_emulator
from runner.scheduler.calibration import Calibration, fit, measured_end
from runner.scheduler.polling import PollPolicy
from tests.helpers.engine import FAST, Shot, fast_emulator, make_manifest, run_engine

POLICY = PollPolicy(min_interval=0.5, max_interval=30.0)  # the real gateway's shape, scaled
NO_SPREAD = PollPolicy(min_interval=0.5, max_interval=30.0, spread=0)


def _watch(cal: Calibration, estimate: float | None, end: float, rng: random.Random, *,
           progress: bool = True, policy: PollPolicy = POLICY) -> tuple[int, float, float]:
    """(looks, delay after the end, first look) of one task, learnt into ``cal``."""
    aim = cal.aim(policy, estimate, rng)
    first = elapsed = aim.first
    looks = 1
    while elapsed < end:
        shown = max(1, min(99, int(100 * elapsed / end))) if progress else 0
        aim.saw(elapsed, shown, 0.0)
        elapsed += aim.next_delay(elapsed, shown, 0.0, rng=rng)
        looks += 1
    cal.learn(aim, elapsed)
    return looks, elapsed - end, first


def _run(cal: Calibration, tasks: int, estimate: float | None, end: Callable[[int], float],
         seed: int = 1, **kwargs: bool) -> list[tuple[int, float, float]]:
    rng = random.Random(seed)
    return [_watch(cal, estimate, end(n), rng, **kwargs) for n in range(tasks)]


def test_fit_takes_quantiles_and_a_probe_bound_lowers_the_low_end() -> None:
    samples = [1.0 + n / 100 for n in range(20)]  # 1.00 .. 1.19
    found = fit(samples)
    assert found is not None
    assert (found.samples, found.low, found.high) == (20, 1.0, 1.18)
    assert fit(samples, [0.7]).low == 0.7  # type: ignore[union-attr]
    assert fit(samples, [1.5]).low == 1.0  # type: ignore[union-attr]  # says nothing new
    assert fit([]) is None
    only_bounds = fit([], [3.0, 2.0])
    assert only_bounds is not None and only_bounds.samples == 0 and only_bounds.low == 2.0


def test_a_task_first_seen_done_measures_nothing() -> None:
    # Censored: "it ended before now" is no end, whatever the moment (the feedback that
    # would drift the aim later and later).
    assert measured_end(0.0, 10.0, None, 0.08) is None


def test_a_narrow_bracket_measures_its_middle_and_a_wide_one_nothing() -> None:
    assert measured_end(98.0, 102.0, None, 0.08) == pytest.approx(100.0)
    assert measured_end(75.0, 104.0, None, 0.08) is None
    # The progress narrows a wide bracket: 75 % at 75 s ends between 98.7 and 100 s.
    assert measured_end(75.0, 104.0, (75 * 100 / 76, 100.0), 0.08) == pytest.approx(99.34,
                                                                                     abs=0.01)
    # Progress the looks belie (it promised an end before a "not yet") is ignored.
    assert measured_end(98.0, 102.0, (80.0, 90.0), 0.08) == pytest.approx(100.0)


def test_nothing_learnt_looks_as_the_hint_alone_does() -> None:
    cal = Calibration()
    aim = cal.aim(NO_SPREAD, 40.0)
    assert aim.first == NO_SPREAD.first_delay(40.0) == 30.0  # 3/4 of 40, within max 30
    off = PollPolicy(min_interval=0.5, max_interval=30.0, spread=0, calibrate=False)
    assert cal.aim(off, 40.0).first == 30.0 and cal.aim(off, 40.0).pool is None


@pytest.mark.parametrize("progress", [True, False])
def test_agreeing_ends_aim_one_look_just_after_them(progress: bool) -> None:
    # A 300 s hint for tasks of 290 s: after the first five, one look each, past the
    # 30 s bound that spaces looks timed by the hint (a measured aim is not).
    cal = Calibration()
    runs = _run(cal, 100, 300.0, lambda n: 290.0, progress=progress)
    later = runs[10:]
    assert statistics.mean(looks for looks, _, _ in later) <= 1.3
    assert max(delay for _, delay, _ in later) <= 0.15 * 290
    assert statistics.mean(delay for _, delay, _ in later) <= 0.1 * 290


def test_with_the_real_bound_the_hint_alone_costs_ten_looks_and_a_measured_aim_one() -> None:
    # --poll-max 30 s and 300 s tasks: every look timed by the hint is at most 30 s apart.
    off = PollPolicy(min_interval=0.5, max_interval=30.0, calibrate=False)
    alone = _run(Calibration(), 20, 300.0, lambda n: 290.0, policy=off)
    assert statistics.mean(looks for looks, _, _ in alone) >= 9
    measured = _run(Calibration(), 60, 300.0, lambda n: 290.0)
    assert statistics.mean(looks for looks, _, _ in measured[10:]) <= 1.3


@pytest.mark.parametrize("progress", [True, False])
def test_the_aim_does_not_drift_later_when_every_task_is_seen_done(progress: bool) -> None:
    cal = Calibration()
    runs = _run(cal, 1000, 300.0, lambda n: 290.0, progress=progress)
    firsts = [first for looks, _, first in runs[500:] if looks == 1]
    assert max(firsts) <= 290 * 1.15
    assert statistics.mean(delay for _, delay, _ in runs[500:]) <= 0.1 * 290


@pytest.mark.parametrize("progress", [True, False])
@pytest.mark.parametrize("now", [200.0, 400.0], ids=["speeds-up", "slows-down"])
def test_a_gateway_that_changes_pace_is_followed(progress: bool, now: float) -> None:
    # Faster: a probe finds a task done before the earliest measured end; slower: the aimed
    # looks find tasks unfinished and measure them. Either starts the measurements afresh.
    cal = Calibration()
    _run(cal, 60, 300.0, lambda n: 290.0, progress=progress)
    runs = _run(cal, 120, 300.0, lambda n: now, progress=progress, seed=2)
    settled = runs[60:]
    assert statistics.mean(looks for looks, _, _ in settled) <= 1.5
    assert statistics.mean(delay for _, delay, _ in settled) <= 0.15 * now


@pytest.mark.parametrize("estimate", [None, 0.0])
def test_without_a_hint_the_task_times_themselves_are_learnt(estimate: float | None) -> None:
    # A hint of 0 is whole-second rounding of a short task: no hint. default_estimate
    # (300 s) is far from these 8 s tasks; the run finds them by halving, then aims.
    cal = Calibration()
    policy = PollPolicy(min_interval=0.1, max_interval=30.0)
    runs = _run(cal, 60, estimate, lambda n: 8.0, policy=policy)
    assert statistics.mean(looks for looks, _, _ in runs[30:]) <= 1.3
    assert statistics.mean(delay for _, delay, _ in runs[30:]) <= 0.15 * 8


def test_ends_that_disagree_keep_the_early_look_and_the_progress() -> None:
    # Tasks from 0.7 to 1.3 x the hint: a look after the slowest would keep the quick ones
    # waiting, so the first look stays before the median end and the progress places the
    # second, as with the hint alone.
    cal = Calibration()
    draws = random.Random(9)
    runs = _run(cal, 200, 100.0, lambda n: 100.0 * draws.uniform(0.7, 1.3))
    assert statistics.mean(delay for _, delay, _ in runs) <= 0.05 * 100
    assert max(first for _, _, first in runs[50:]) <= 0.8 * 100 * 1.03


def test_a_hint_three_times_too_low_is_corrected_by_the_measured_ends() -> None:
    cal = Calibration()
    runs = _run(cal, 80, 100.0, lambda n: 300.0)
    assert statistics.mean(looks for looks, _, _ in runs[20:]) <= 1.3
    assert statistics.mean(delay for _, delay, _ in runs[20:]) <= 0.1 * 300


async def test_a_run_with_a_right_whole_second_hint_costs_one_look_per_take(
        tmp_path: Path) -> None:
    # 1 s tasks report estimated_time 1 (whole seconds, as the gateway does). Counted at the
    # emulator. The first wave (8 at once) has nothing to learn from and costs two looks
    # each, as with the hint alone; the rest one, so 48 takes cost 16 + 40 (plus a probe or
    # a look that came early now and then) and the bound leaves room for a loaded machine
    # (a task the emulator finished late is looked at once more; the hint alone costs 2).
    manifest = make_manifest(tmp_path, [Shot(f"s{n:02d}", f"take {n}") for n in range(48)])
    settings = replace(FAST, concurrency=8, downloads=8,
                       polling=PollPolicy(min_interval=0.05, max_interval=2.0))
    warm_up = make_manifest(tmp_path / "warm-up", [Shot("w", "warm-up")])
    async with run_emulator(fast_emulator(queue_time=0.0, processing_time=0.0)) as emulator:
        # The emulator's first clip of a shape costs it a second of CPU (in this process):
        # paid here, so that the run's first tasks do not end a second late.
        await run_engine(warm_up, emulator.base_url, settings=settings)
        emulator.update(processing_time=1.0)
        before = dict(emulator.stats()["polls_per_task"])
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert out.summary.all_done
    polls = {task: n for task, n in stats["polls_per_task"].items() if task not in before}
    assert len(polls) == 48
    assert sum(polls.values()) / 48 < 1.5, polls


def test_poll_calibration_off_on_the_command_line_keeps_the_hint_alone() -> None:
    from types import SimpleNamespace

    from runner.cli import build_parser
    from runner.cli.flags import engine_settings

    config: Any = SimpleNamespace(uses_emulator=False, concurrency=4, submit_rate=2.0,
                                  downloads=4, max_credits=None)
    parser = build_parser()
    on = engine_settings(parser.parse_args(["run", "m.yaml"]), config).polling
    off = engine_settings(parser.parse_args(["run", "m.yaml", "--poll-calibration", "off"]),
                          config).polling
    assert on.calibrate and not off.calibrate
    assert Calibration().aim(off, 40.0).pool is None  # learns nothing, aims by the hint
