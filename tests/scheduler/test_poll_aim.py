"""The default poll policy looks at 3/4 of the estimate, then just after the predicted end."""

from __future__ import annotations

import random

import pytest

from runner.scheduler.polling import PollPolicy


def _watch(task_time: float, estimate: float, seed: int) -> tuple[int, float]:
    """(polls, delay after the end) for a task whose progress rises linearly to ``task_time``."""
    policy = PollPolicy(min_interval=0.05, max_interval=600)
    rng = random.Random(seed)
    elapsed = policy.first_delay(estimate, rng)
    polls = 1
    while elapsed < task_time:
        progress = int(100 * elapsed / task_time)
        elapsed += policy.next_delay(elapsed, estimate, progress, rng)
        polls += 1
    return polls, elapsed - task_time


@pytest.mark.parametrize("seed", range(50))
def test_a_right_estimate_costs_two_polls_and_a_few_percent_of_delay(seed: int) -> None:
    polls, delay = _watch(120.0, 120.0, seed)
    assert polls == 2
    assert delay <= 0.07 * 120


@pytest.mark.parametrize("seed", range(50))
@pytest.mark.parametrize("task_time", [90.0, 105.0, 150.0, 180.0])
def test_tasks_shorter_or_longer_than_the_estimate_are_seen_soon(seed: int, task_time: float
                                                                 ) -> None:
    polls, delay = _watch(task_time, 120.0, seed)
    assert polls <= 3
    assert delay <= 0.07 * task_time


@pytest.mark.parametrize("seed", range(50))
def test_an_estimate_three_times_too_low_is_corrected_by_the_progress(seed: int) -> None:
    polls, delay = _watch(120.0, 40.0, seed)
    assert polls <= 3
    assert delay <= 0.1 * 120
