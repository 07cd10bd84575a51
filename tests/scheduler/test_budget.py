"""Credits are reserved before each creation and the run stops submitting at the cap."""

from __future__ import annotations

import pytest

from runner.scheduler.budget import BudgetGuard


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
