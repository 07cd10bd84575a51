"""How a move commits: its check, its refusals, the commit mode, and the event's redaction.

A move checks and changes the take in one UPDATE and reads the status only to explain a
refusal; the commit mode (``synchronous``) is set only when it changes. These tests pin what
the callers rely on through those shortcuts: the same messages, a durable commit for every
move that cannot be told again, and no secret in an event's details.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.core.errors import StateError
from runner.core.redact import forget_secrets, register_secret
from runner.state import StateStore, TakeStatus, UnknownTake, store_path_for
from tests.helpers.state import make_take, payloads
from tests.state.conftest import OpenStore

KEY = "s01/take-1"
SECRET = "sk-moves-secret-0123"

Move = Callable[[StateStore, str], Any]
MOVES: dict[str, Move] = {
    "submitting": lambda s, k: s.mark_submitting(k, {"p": 1}, 10.0),
    "submitted": lambda s, k: s.mark_submitted(k, "task", 12.0, 30.0),
    "not_sent": lambda s, k: s.mark_not_sent(k, "refused to connect"),
    "ambiguous": lambda s, k: s.mark_ambiguous(k, "lost"),
    "held": lambda s, k: s.mark_held(k),
    "progress": lambda s, k: s.mark_progress(k, "processing", 50, polled=True),
    "poll": lambda s, k: s.record_poll(k),
    "completed": lambda s, k: s.mark_completed(k, "https://cdn/v.mp4", 2e9),
    "downloading": lambda s, k: s.mark_downloading(k),
    "failed": lambda s, k: s.mark_failed(k, "transient", "service_error", "x"),
    "done": lambda s, k: s.mark_done(k, "v.mp4", 1, "ab", 3.0),
    "reset": lambda s, k: s.reset_for_retry(k),
}
# What the store must not lose to a power cut once the call returns (see runner.state.base).
DURABLE = {"submitting", "submitted", "not_sent", "ambiguous", "held", "failed", "done", "reset"}


@pytest.fixture
def store(tmp_path: Path, open_store: OpenStore) -> Iterator[StateStore]:
    with open_store(tmp_path / "renders") as opened:
        takes = [make_take("s01"), make_take("s02")]
        opened.sync(takes, payloads(takes))
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[StateStore]:
    """The embedded store alone: what is asked of SQLite's own commit modes and file."""
    with StateStore.open(store_path_for(tmp_path / "renders")) as opened:
        takes = [make_take("s01"), make_take("s02")]
        opened.sync(takes, payloads(takes))
        yield opened


@pytest.fixture
def secret() -> Iterator[str]:
    register_secret(SECRET)
    yield SECRET
    forget_secrets()


@pytest.mark.parametrize("name", sorted(MOVES))
def test_every_move_of_an_unknown_take_names_it(store: StateStore, name: str) -> None:
    before = len(store.events())
    with pytest.raises(UnknownTake, match="nope/take-1 is not in the state store"):
        MOVES[name](store, "nope/take-1")
    assert len(store.events()) == before


@pytest.mark.parametrize(
    ("steps", "name", "message"),
    [
        ([], "done", "cannot go from new to done"),
        ([], "downloading", "cannot go from new to downloading"),
        ([], "completed", "cannot go from new to completed"),
        ([], "submitted", "cannot go from new to submitted"),
        ([], "held", "cannot go from new to held"),
        ([], "not_sent", "cannot go from new to new"),
        (["submitting"], "submitting", "cannot go from submitting to submitting"),
        (["submitting"], "reset", "cannot go from submitting to new"),
        (["submitting", "submitted", "completed", "done"], "failed",
         "cannot go from done to failed"),
    ],
)
def test_a_forbidden_move_says_from_where_to_where_and_changes_nothing(
    store: StateStore, steps: list[str], name: str, message: str
) -> None:
    for step in steps:
        MOVES[step](store, KEY)
    before, events = store.record(KEY), len(store.events())
    with pytest.raises(StateError, match=f"^take {KEY}: {message}$") as caught:
        MOVES[name](store, KEY)
    assert not isinstance(caught.value, UnknownTake)
    assert store.record(KEY) == before
    assert len(store.events()) == events


def _commit_modes(store: StateStore, run: Callable[[], None]) -> list[str]:
    """The ``synchronous`` setting in force at each COMMIT that ``run`` makes."""
    level = store.conn.execute("PRAGMA synchronous").fetchone()[0]
    mode = {0: "OFF", 1: "NORMAL", 2: "FULL"}[level]
    modes: list[str] = []

    def trace(sql: str) -> None:
        nonlocal mode
        statement = sql.strip().upper()
        if statement.startswith("PRAGMA SYNCHRONOUS="):
            mode = statement.split("=", 1)[1]
        elif statement == "COMMIT":
            modes.append(mode)

    store.conn.set_trace_callback(trace)
    try:
        run()
    finally:
        store.conn.set_trace_callback(None)
    return modes


@pytest.mark.parametrize(
    "path",
    [
        ["submitting", "submitted", "progress", "completed", "downloading", "done"],
        ["submitting", "ambiguous", "held", "submitted", "progress", "poll", "failed", "reset",
         "submitting", "not_sent"],
        ["submitting", "submitted", "completed", "downloading", "failed", "completed",
         "downloading", "done"],
    ],
)
def test_each_move_commits_durably_unless_the_gateway_can_tell_it_again(
    sqlite_store: StateStore, path: list[str]
) -> None:
    store = sqlite_store
    """Two takes' moves interleaved, as a run makes them: whatever came before, a move that
    must survive a power cut commits with ``synchronous=FULL``, the cheap ones ``NORMAL``."""
    for name in path:
        for key in (KEY, "s02/take-1"):
            move = MOVES[name]
            modes = _commit_modes(store, lambda m=move, k=key: m(store, k))  # type: ignore[misc]
            assert modes == ["FULL" if name in DURABLE else "NORMAL"], (name, key)
    assert _commit_modes(store, lambda: store.put_upload("aa", "https://u", None)) == ["FULL"]


def test_a_secret_in_a_move_s_details_never_reaches_the_events(
    store: StateStore, secret: str
) -> None:
    MOVES["submitting"](store, KEY)
    store.mark_ambiguous(KEY, f"lost the answer to a request made with {secret}")
    store.mark_submitting(KEY, {"auth": {"key": secret}, "list": [secret, 1]}, 10.0)
    store.mark_failed(KEY, "auth", "unauthorized", f"key {secret} refused")
    store.put_upload("bb", f"https://u/?k={secret}", None, mime=secret)
    text = json.dumps([e.details for e in store.events()]) + json.dumps(store.record(KEY).payload)
    assert secret not in text
    assert text.count("[REDACTED]") == 5  # two messages, the mime, two in the payload
    assert store.events(KEY)[-1].details == {
        "kind": "auth", "code": "unauthorized", "message": "key [REDACTED] refused"}


def test_a_readonly_store_refuses_a_move_and_a_failed_statement_rolls_back(
    sqlite_store: StateStore,
) -> None:
    store = sqlite_store
    assert store.path is not None
    reader = StateStore.open_readonly(store.path)
    with reader, pytest.raises(StateError, match="read-only"):
        reader.mark_downloading(KEY)
    before = store.record(KEY)
    with pytest.raises(StateError, match="state store"), store._write() as conn:
        conn.execute("UPDATE takes SET status = 'submitting' WHERE key = ?", (KEY,))
        conn.execute("INSERT INTO nowhere VALUES (1)")
    assert store.record(KEY) == before
    assert not store.conn.in_transaction
    MOVES["submitting"](store, KEY)  # the store is usable after the error
    assert isinstance(store.conn, sqlite3.Connection)


def test_a_record_read_back_is_a_frozen_snapshot_equal_to_one_built_by_hand(
    store: StateStore,
) -> None:
    MOVES["submitting"](store, KEY)
    record = store.record(KEY)
    assert record == dataclasses.replace(record)  # built by __init__: the same value
    assert hash(record) == hash(dataclasses.replace(record))
    assert record.status is TakeStatus.SUBMITTING and record.tags == ()
    assert record.payload == {"p": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = TakeStatus.DONE  # type: ignore[misc]
    assert store.record(KEY) is not record and store.record(KEY) == record
