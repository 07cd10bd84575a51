"""The Store Protocol (runner.state.protocol) and the SQLite store that keeps it.

mypy --strict checks the types (``_: type[Store] = StateStore`` in runner/state/store.py);
these tests check what mypy cannot see: that the Protocol's calls mean the same on the SQLite
store as the free functions of the modules that own the SQL, through a real store file.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.state import StateStore, Store, TakeAction
from runner.state.records import ACTIONS
from tests.helpers.state import make_take, payloads
from tests.state.conftest import OpenStore


@pytest.fixture
def store(tmp_path: Path, open_store: OpenStore) -> Iterator[StateStore]:
    with open_store(tmp_path) as opened:
        yield opened


def _members(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(value) for name, value in vars(cls).items()
            if callable(value) and not name.startswith("_")}


def test_the_sqlite_store_takes_every_call_of_the_protocol_as_declared() -> None:
    wanted = _members(Store)
    assert {"sync", "mark_submitting", "record", "picks", "notes", "traces", "close"} <= set(wanted)
    for name, signature in wanted.items():
        have = inspect.signature(getattr(StateStore, name))
        assert [(p.name, p.kind, p.default) for p in have.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in signature.parameters.values()], name


def test_choices_go_through_the_protocol_and_read_back(store: Store) -> None:
    takes = [make_take("s01", 1), make_take("s02", 1)]
    store.sync(takes, payloads(takes))
    store.set_pick("s01", 1, "a" * 64)
    store.set_note("s02/take-1", "too dark", None)
    store.record_frame_hashes("s02/take-1", {"s01": "a" * 64})
    assert store.picks()["s01"].take == 1
    assert store.notes()["s02/take-1"].text == "too dark"
    assert store.frame_hashes() == {"s02/take-1": {"s01": "a" * 64}}
    assert store.done_files() == []
    traces, finished = store.traces(None)
    assert [trace["id"] for trace in traces] == ["s01/take-1", "s02/take-1"]
    assert [item.key for item in finished] == ["s01/take-1", "s02/take-1"]
    assert store.source_changes(takes) == {}


def test_a_plan_s_action_is_a_take_action_that_reads_as_its_word(store: Store) -> None:
    takes = [make_take("s01", 1)]
    plan = store.sync(takes, payloads(takes))[0]
    assert plan.action is TakeAction.SUBMIT
    assert plan.action == "submit" and f"{plan.action}" == "submit"
    assert tuple(action.value for action in TakeAction) == ACTIONS
