"""Retry delays (full jitter, Retry-After) and poll timing (estimate-driven, bounded)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.scheduler.backoff import BackoffPolicy
from runner.scheduler.polling import PollPolicy


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    policy = BackoffPolicy(base=0.5, cap=4.0)
    assert [policy.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.ceiling(10_000) == 4.0


@given(attempt=st.integers(0, 200), seed=st.integers(0, 2**32))
def test_backoff_delay_is_within_zero_and_the_ceiling(attempt: int, seed: int) -> None:
    policy = BackoffPolicy(base=0.1, cap=10.0)
    delay = policy.delay(attempt, rng=random.Random(seed))
    assert 0.0 <= delay <= policy.ceiling(attempt)


def test_backoff_honours_retry_after_as_a_floor_but_caps_it() -> None:
    policy = BackoffPolicy(base=0.1, cap=1.0, retry_after_cap=60.0)
    rng = random.Random(1)
    assert policy.delay(0, retry_after=7, rng=rng) == 7
    assert policy.delay(0, retry_after=86_400, rng=rng) == 60.0


def test_backoff_spreads_simultaneous_failures() -> None:
    policy = BackoffPolicy(base=1.0, cap=8.0)
    rng = random.Random(3)
    delays = {round(policy.delay(3, rng=rng), 6) for _ in range(50)}
    assert len(delays) > 40


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(base=0)
    with pytest.raises(ValueError):
        BackoffPolicy(base=2, cap=1)


def test_first_poll_is_near_the_estimate_within_bounds() -> None:
    policy = PollPolicy(min_interval=1, max_interval=60, first_fraction=0.9, spread=0)
    assert policy.first_delay(40) == pytest.approx(36)
    assert policy.first_delay(0.01) == 1
    assert policy.first_delay(10_000) == 60
    assert policy.first_delay(None) == 60  # default estimate 300 s, clamped


def test_later_polls_scale_with_the_remaining_time() -> None:
    policy = PollPolicy(min_interval=0.5, max_interval=100, remaining_fraction=0.5, spread=0)
    assert policy.next_delay(elapsed=20, estimated_time=100) == pytest.approx(40)
    assert policy.next_delay(elapsed=90, estimated_time=100) == pytest.approx(5)
    # Progress says more is left than the estimate does: trust the slower guess.
    assert policy.next_delay(elapsed=90, estimated_time=100, progress=50) == pytest.approx(45)


def test_late_tasks_are_polled_gently_but_never_beyond_the_bound() -> None:
    policy = PollPolicy(min_interval=1, max_interval=10, spread=0)
    assert policy.next_delay(elapsed=101, estimated_time=100) == pytest.approx(1.0)
    assert policy.next_delay(elapsed=104, estimated_time=100) == pytest.approx(2.0)
    assert policy.next_delay(elapsed=10_000, estimated_time=100) == 10


def test_a_late_task_at_99_percent_is_not_hammered() -> None:
    policy = PollPolicy(min_interval=0.1, max_interval=100, spread=0)
    assert policy.next_delay(elapsed=200, estimated_time=100, progress=99) == pytest.approx(50)


def test_a_late_task_costs_logarithmically_many_polls() -> None:
    policy = PollPolicy(min_interval=0.1, max_interval=1000, spread=0)
    elapsed, polls = 10.0, 0
    while elapsed < 10 + 3600:  # an hour late
        elapsed += policy.next_delay(elapsed, estimated_time=10)
        polls += 1
    assert polls < 30


@given(elapsed=st.floats(0, 1e6), estimate=st.one_of(st.none(), st.floats(0, 1e6)),
       progress=st.integers(0, 100), seed=st.integers(0, 2**32))
def test_poll_delays_respect_bounds_with_spread(elapsed: float, estimate: float | None,
                                               progress: int, seed: int) -> None:
    policy = PollPolicy(min_interval=0.2, max_interval=5, spread=0.25)
    rng = random.Random(seed)
    for delay in (policy.first_delay(estimate, rng),
                  policy.next_delay(elapsed, estimate, progress, rng)):
        assert 0.2 * 0.75 <= delay <= 5 * 1.25


def test_polls_of_many_tasks_are_spread() -> None:
    policy = PollPolicy(min_interval=1, max_interval=60, first_fraction=0.9, spread=0.2)
    rng = random.Random(5)
    firsts = {round(policy.first_delay(30, rng), 6) for _ in range(100)}
    assert len(firsts) > 90
    assert min(firsts) < 27 * 0.95 and max(firsts) > 27 * 1.05


def test_poll_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        PollPolicy(min_interval=0)
    with pytest.raises(ValueError):
        PollPolicy(min_interval=5, max_interval=1)
    with pytest.raises(ValueError):
        PollPolicy(spread=1.5)
