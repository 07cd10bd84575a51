"""Credits are reserved before each creation and the run stops submitting at the cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.state.budget import BudgetGuard


def test_reservations_stop_at_the_cap_and_stay_stopped() -> None:
    guard = BudgetGuard(max_credits=100, committed=30)
    assert guard.try_reserve("a/take-1", 40)
    assert guard.remaining == pytest.approx(30)
    assert not guard.try_reserve("b/take-1", 40)
    assert guard.exhausted
    # Even a cheap take is not squeezed in after the stop: order must not depend on prices.
    assert not guard.try_reserve("c/take-1", 1)
    assert guard.total == pytest.approx(70)


def test_exactly_reaching_the_cap_is_allowed() -> None:
    guard = BudgetGuard(max_credits=81)
    assert guard.try_reserve("a/take-1", 40.5)
    assert guard.try_reserve("a/take-2", 40.5)
    assert not guard.try_reserve("a/take-3", 0.1)


def test_gateway_figure_replaces_the_estimate() -> None:
    guard = BudgetGuard(max_credits=100)
    assert guard.try_reserve("a/take-1", 40)
    guard.correct("a/take-1", 40, 60)
    assert guard.reserved == pytest.approx(60)
    assert not guard.try_reserve("b/take-1", 41)


def test_a_creation_that_did_not_happen_gives_its_reservation_back() -> None:
    guard = BudgetGuard(max_credits=50)
    assert guard.try_reserve("a/take-1", 40)
    guard.release("a/take-1", 40)
    assert guard.reserved == 0
    assert guard.try_reserve("a/take-1", 40)


def test_without_a_cap_everything_is_counted_and_allowed() -> None:
    guard = BudgetGuard(max_credits=None, committed=5)
    for n in range(100):
        assert guard.try_reserve(f"s/take-{n}", 40)
    assert guard.remaining is None
    assert guard.total == pytest.approx(4005)


def test_unknown_estimate_reserves_nothing_until_the_gateway_says() -> None:
    guard = BudgetGuard(max_credits=10)
    assert guard.try_reserve("a/take-1", None)
    guard.correct("a/take-1", None, 8)
    assert guard.total == pytest.approx(8)


@given(st.lists(st.tuples(st.sampled_from(["reserve", "correct", "release"]),
                          st.integers(0, 5), st.floats(0, 500), st.floats(0, 500)),
                max_size=60))
def test_the_running_total_matches_every_reservation_added_up(
    steps: list[tuple[str, int, float, float]],
) -> None:
    guard = BudgetGuard(max_credits=None)
    model: dict[str, float] = {}
    for action, n, estimate, actual in steps:
        key = f"s{n}/take-1"
        if action == "reserve":
            guard.try_reserve(key, estimate)
            model[key] = model.get(key, 0.0) + estimate
        elif action == "correct":
            guard.correct(key, estimate, actual)
            model[key] = max(0.0, model.get(key, 0.0) - estimate) + actual
        else:
            guard.release(key, estimate)
            left = model.get(key, 0.0) - estimate
            if left <= 1e-9:
                model.pop(key, None)
            else:
                model[key] = left
        assert guard.reserved == pytest.approx(sum(model.values()), abs=1e-6)
        assert guard.total == pytest.approx(sum(model.values()), abs=1e-6)
