"""The rule for taking a paid take back (issue 21, part 1): a failed take whose task id is
known is collected again, never created anew, until the provider's documented result
lifetime is over; only then, and only with ``--retry-failed``, is a new task made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.state import StateStore, TakePlan
from runner.wire.specs import spec
from tests.helpers.state import make_take, payloads
from tests.state.conftest import OpenStore

KEY = "s01/take-1"
DAY = 24 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock, open_store: OpenStore) -> Iterator[StateStore]:
    with open_store(tmp_path, clock=clock) as opened:
        yield opened


def _plan(store: StateStore, *, retry_failed: bool = False) -> TakePlan:
    takes = [make_take()]
    return store.sync(takes, payloads(takes), retry_failed=retry_failed)[0]


def _refused(store: StateStore, kind: str = "collectable", code: str = "download_refused",
             *, expires: float | None) -> None:
    _plan(store)
    store.mark_submitting(KEY, {"prompt": "p"}, 24.3)
    store.mark_submitted(KEY, "task-1", 24.3)
    store.mark_completed(KEY, "ftp://cdn/v.mp4", expires)
    store.mark_failed(KEY, kind, code, "result link is not http(s)")


@pytest.mark.parametrize("retry_failed", [False, True])
def test_a_collectable_take_is_collected_not_created_even_with_retry_failed(
        store: StateStore, clock: Clock, retry_failed: bool) -> None:
    _refused(store, expires=clock.now + DAY)
    plan = _plan(store, retry_failed=retry_failed)
    assert (plan.action, plan.reason) == ("download", "not collected yet")


@pytest.mark.parametrize("code", ["download_refused", "verify_failed"])
def test_past_its_documented_lifetime_it_needs_a_new_creation_asked_for(
        store: StateStore, clock: Clock, code: str) -> None:
    _refused(store, code=code, expires=clock.now + DAY)
    clock.now += DAY
    plan = _plan(store)
    assert (plan.action, plan.reason) == ("failed", "link lifetime over")
    plan = _plan(store, retry_failed=True)
    assert (plan.action, plan.reason) == ("retry", "link lifetime over")


def test_without_a_documented_lifetime_only_the_provider_ends_it(
        store: StateStore, clock: Clock) -> None:
    _refused(store, expires=None)  # fal.ai documents none
    clock.now += 365 * DAY
    assert _plan(store).action == "download"


def test_a_transient_download_failure_is_collected_too(store: StateStore, clock: Clock) -> None:
    _refused(store, kind="transient", code="download_failed", expires=clock.now + DAY)
    assert (_plan(store).action, _plan(store).reason) == ("download", "not collected yet")


def test_a_task_the_provider_failed_is_not_collectable(store: StateStore) -> None:
    _plan(store)
    store.mark_submitting(KEY, {"prompt": "p"}, 24.3)
    store.mark_submitted(KEY, "task-1", 24.3)
    store.mark_failed(KEY, "permanent", "content_policy_violation", "refused")
    assert _plan(store).action == "failed"
    assert _plan(store, retry_failed=True).action == "retry"


def test_the_documented_result_lifetimes_per_provider() -> None:
    assert spec("gateway").result_lifetime == DAY  # gateway-api.md: links valid 24 h
    assert spec("kling").result_lifetime == 30 * DAY  # providers.md: deleted after 30 days
    assert spec("fal").result_lifetime is None  # providers.md: fal.ai documents none


@pytest.mark.parametrize("code", ["download_refused", "verify_failed"])
def test_a_result_an_earlier_version_refused_for_good_is_taken_back_too(
        store: StateStore, clock: Clock, code: str) -> None:
    _refused(store, kind="permanent", code=code, expires=clock.now + DAY)
    assert _plan(store).action == "download"
    clock.now += DAY
    assert _plan(store).action == "failed"
