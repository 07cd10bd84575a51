"""``StateStore.sync``: what a run does with each take, and the reason it says why."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.core.model import Take
from runner.state import StateStore, TakePlan, TakeStatus
from runner.state.decide import change_reason
from tests.helpers.state import make_take, payloads
from tests.state.conftest import OpenStore

KEY = "s01/take-1"


@pytest.fixture
def store(tmp_path: Path, open_store: OpenStore) -> Iterator[StateStore]:
    with open_store(tmp_path) as opened:
        yield opened


def _sync(store: StateStore, *takes: Take, **options: object) -> dict[str, TakePlan]:
    listed = list(takes) or [make_take()]
    return {p.key: p for p in store.sync(listed, payloads(listed), **options)}  # type: ignore[arg-type]


def _done(store: StateStore, key: str = KEY) -> None:
    store.mark_submitting(key, {"prompt": "p"}, 40.0)
    store.mark_submitted(key, "task-1", 40.0)
    store.mark_completed(key, "https://cdn/v.mp4")
    store.mark_done(key, f"{key}.mp4", 10, "cd" * 32, 5.0)


def test_a_new_take_is_submitted_because_it_is_new(store: StateStore) -> None:
    plan = _sync(store)[KEY]
    assert (plan.action, plan.reason, plan.previous) == ("submit", "new", None)
    assert plan.record.status is TakeStatus.NEW
    assert store.events(KEY)[0].event == "take_added"


def test_a_done_take_is_skipped_and_nothing_is_written(store: StateStore) -> None:
    _sync(store)
    _done(store)
    events = len(store.events())
    plan = _sync(store)[KEY]
    assert (plan.action, plan.reason) == ("skip", "done")
    assert len(store.events()) == events


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        pytest.param(make_take(prompt="dawn"), make_take(prompt="dusk"), "prompt changed",
                     id="prompt"),
        pytest.param(make_take(image_sha="aa" * 32), make_take(image_sha="bb" * 32),
                     "asset content changed", id="asset"),
        pytest.param(make_take(duration=5), make_take(duration=8), "settings changed",
                     id="settings"),
    ],
)
def test_a_changed_take_is_rendered_again_saying_why(
    store: StateStore, before: Take, after: Take, reason: str
) -> None:
    _sync(store, before)
    _done(store)
    plan = _sync(store, after)[KEY]
    assert (plan.action, plan.reason) == ("submit", reason)
    assert plan.record.status is TakeStatus.NEW
    assert (plan.record.attempts, plan.record.task_id) == (0, None)
    assert plan.record.fingerprint == after.fingerprint
    assert plan.previous is not None
    assert plan.previous.fingerprint == before.fingerprint
    assert plan.previous.output_path == f"{KEY}.mp4"
    assert plan.previous.status is TakeStatus.DONE
    history = store.history(KEY)
    assert [h.fingerprint for h in history] == [before.fingerprint]
    assert store.record(KEY).reason == reason
    assert store.events(KEY)[-1].details["reason"] == reason
    # Once recorded, the same manifest plans the same way without moving anything again.
    again = _sync(store, after)[KEY]
    assert (again.action, again.reason, again.previous) == ("submit", reason, None)
    assert len(store.history(KEY)) == 1


def test_a_never_sent_take_that_changed_is_simply_still_new(store: StateStore) -> None:
    _sync(store, make_take(prompt="dawn"))
    plan = _sync(store, make_take(prompt="dusk"))[KEY]
    assert (plan.action, plan.reason, plan.previous) == ("submit", "new", None)
    assert store.history() == []


@pytest.mark.parametrize(
    ("kind", "options", "action"),
    [
        pytest.param("transient", {}, "retry", id="transient-retried"),
        pytest.param("quota", {}, "retry", id="quota-retried"),
        pytest.param("budget", {}, "retry", id="budget-retried"),
        pytest.param("permanent", {}, "failed", id="permanent-reported"),
        pytest.param("permanent", {"retry_failed": True}, "retry", id="permanent-retry-failed"),
    ],
)
def test_failed_takes_are_retried_by_kind(
    store: StateStore, kind: str, options: dict[str, object], action: str
) -> None:
    _sync(store)
    store.mark_submitting(KEY, {}, 1.0)
    store.mark_submitted(KEY, "t")
    store.mark_failed(KEY, kind, "code", "message")
    plan = _sync(store, **options)[KEY]
    assert (plan.action, plan.reason) == (action, "failed before")


def test_a_completed_task_that_failed_to_download_is_downloaded_not_paid_again(
    store: StateStore,
) -> None:
    _sync(store)
    store.mark_submitting(KEY, {}, 1.0)
    store.mark_submitted(KEY, "t")
    store.mark_completed(KEY, "https://cdn/v.mp4")
    store.mark_failed(KEY, "transient", None, "connection reset")
    assert _sync(store)[KEY].action == "download"


@pytest.mark.parametrize(
    ("steps", "action"),
    [
        pytest.param(lambda s: s.mark_submitted(KEY, "t"), "poll", id="submitted-polled"),
        pytest.param(
            lambda s: (s.mark_submitted(KEY, "t"), s.mark_completed(KEY, "https://v")),
            "download", id="completed-downloaded",
        ),
        pytest.param(
            lambda s: (s.mark_submitted(KEY, "t"), s.mark_completed(KEY, "https://v"),
                       s.mark_downloading(KEY)),
            "download", id="half-downloaded",
        ),
    ],
)
def test_takes_in_flight_are_collected_never_resubmitted(
    store: StateStore, steps: Callable[[StateStore], object], action: str
) -> None:
    _sync(store)
    store.mark_submitting(KEY, {}, 1.0)
    steps(store)
    plan = _sync(store)[KEY]
    assert (plan.action, plan.reason) == (action, "in flight")
    assert plan.record.task_id == "t"


def test_ambiguous_submissions_are_resubmitted_once_then_held(store: StateStore) -> None:
    _sync(store)
    store.mark_submitting(KEY, {}, 1.0)  # ...and the run died: the answer is lost
    plan = _sync(store)[KEY]
    assert (plan.action, plan.reason) == ("submit", "ambiguous submission")
    assert plan.record.status is TakeStatus.AMBIGUOUS
    store.mark_submitting(KEY, {}, 1.0)
    store.mark_ambiguous(KEY, "timeout after sending")
    plan = _sync(store)[KEY]
    assert (plan.action, plan.reason) == ("hold", "ambiguous submission")
    assert plan.record.status is TakeStatus.HELD
    assert store.record(KEY).status is TakeStatus.HELD
    assert _sync(store, retry_failed=True)[KEY].action == "submit"


def test_ambiguous_hold_policy_holds_at_once(store: StateStore) -> None:
    _sync(store)
    store.mark_submitting(KEY, {}, 1.0)
    plan = _sync(store, ambiguous="hold")[KEY]
    assert (plan.action, plan.reason) == ("hold", "ambiguous submission")
    assert store.record(KEY).status is TakeStatus.HELD
    assert [e.event for e in store.events(KEY)][-2:] == ["take_ambiguous", "take_held"]
    with pytest.raises(ValueError, match="resubmit"):
        _sync(store, ambiguous="sometimes")


def test_a_submitting_take_whose_prompt_changed_counts_as_maybe_billed(
    store: StateStore,
) -> None:
    _sync(store, make_take(prompt="one"))
    store.mark_submitting(KEY, {}, 30.0)
    plan = _sync(store, make_take(prompt="two"))[KEY]
    assert (plan.action, plan.reason) == ("submit", "prompt changed")
    assert plan.previous is not None and plan.previous.status is TakeStatus.AMBIGUOUS
    assert store.credits_committed() == 30.0
    assert store.totals()["ambiguous_submissions"] == 1


def test_tags_follow_the_manifest(store: StateStore) -> None:
    _sync(store, make_take(tags=["a"]))
    plan = _sync(store, make_take(tags=["b", "c"]))[KEY]
    assert plan.record.tags == ("b", "c")
    assert store.record(KEY).tags == ("b", "c")


def test_twenty_thousand_takes_sync_in_one_transaction(store: StateStore) -> None:
    takes = [make_take(f"s{i:05d}", 1 + i % 3, prompt=f"p{i}") for i in range(20_000)]
    first = store.sync(takes, payloads(takes))
    assert len(first) == 20_000
    second = store.sync(takes, payloads(takes))
    assert {p.action for p in second} == {"submit"}
    assert len(store.events()) == 20_000


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ({"prompt": "a"}, {"prompt": "b"}, "prompt changed"),
        ({"multi_prompt": [1]}, {"multi_prompt": [2]}, "prompt changed"),
        ({"image_urls": ["sha256:1"]}, {"image_urls": ["sha256:2"]}, "asset content changed"),
        ({"img": "sha256:1"}, {"img": "sha256:2"}, "asset content changed"),  # renamed field
        ({"duration": 5}, {"duration": 6}, "settings changed"),
        ({"duration": 5, "image_urls": ["a"]}, {"duration": 6, "image_urls": ["b"]},
         "settings changed"),
        (None, {"prompt": "a"}, "settings changed"),
    ],
)
def test_change_reason(old: dict[str, object] | None, new: dict[str, object], reason: str) -> None:
    assert change_reason(old, new) == reason
