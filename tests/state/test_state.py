"""The durable state store: file, schema, lock, transitions, ledger, readers, crash safety."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.core.errors import StateError
from runner.state import (
    SCHEMA_VERSION,
    StateStore,
    TakeRecord,
    TakeStatus,
    UnknownTake,
    store_path_for,
)
from runner.state import dbfile as state_schema
from runner.state.records import RECORD_COLUMNS
from tests.helpers.fsync_probe import record_fsyncs
from tests.helpers.state import make_take, payloads


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return store_path_for(tmp_path / "renders")


@pytest.fixture
def store(path: Path) -> Iterator[StateStore]:
    with StateStore.open(path) as opened:
        yield opened


def _synced(store: StateStore, *takes_: object) -> None:
    takes = list(takes_) or [make_take()]
    store.sync(takes, payloads(takes))  # type: ignore[arg-type]


# ------------------------------------------------------------------ the file itself
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names fds via /proc")
def test_the_new_store_folder_is_flushed_into_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path.resolve()
    seen = record_fsyncs(monkeypatch)
    with StateStore.open(root / "out" / ".shotrun" / "state.sqlite"):
        pass
    # sqlite flushes the files inside; the folders holding them are shotrun's to flush.
    assert str(root) in seen and str(root / "out") in seen
    assert stat.S_IMODE((root / "out" / ".shotrun").stat().st_mode) == 0o700


def test_store_is_private_wal_and_versioned(path: Path, store: StateStore) -> None:
    assert path == path.parent.parent / ".shotrun" / "state.sqlite"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((path.parent / "state.lock").stat().st_mode) == 0o600
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_existing_loose_file_is_made_private(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    with StateStore.open(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_store_from_a_newer_shotrun_is_refused(path: Path) -> None:
    StateStore.open(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE schema_version SET version = 99")
    raw.commit()
    raw.close()
    with pytest.raises(StateError, match=r"schema version 99.*upgrade shotrun"):
        StateStore.open(path)
    with pytest.raises(StateError, match="upgrade shotrun"):
        StateStore.open_readonly(path)
    # The refusal released the lock: a fixed shotrun could open it at once.
    lock = state_schema.WriterLock(path)
    lock.acquire()
    lock.release()


def test_migrations_upgrade_an_older_store_keeping_its_data(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StateStore.open(path) as store:
        _synced(store)
    nxt = SCHEMA_VERSION + 1
    monkeypatch.setattr(state_schema, "SCHEMA_VERSION", nxt)
    monkeypatch.setitem(state_schema.MIGRATIONS, nxt,
                        ("ALTER TABLE takes ADD COLUMN note TEXT",))
    # A reader upgrades it in place (issue 21: it used to send the user to `shotrun run`, a
    # command that spends); while a run holds it, it waits for that run instead.
    lock = state_schema.WriterLock(path)
    lock.acquire()
    try:
        with pytest.raises(StateError, match="read it again once that run has ended"):
            StateStore.open_readonly(path)
    finally:
        lock.release()
    with StateStore.open_readonly(path) as reader:
        assert len(reader.records()) == 1
    with StateStore.open(path) as store:
        assert store.record("s01/take-1").status is TakeStatus.NEW
        assert store.conn.execute("SELECT version FROM schema_version").fetchone()[0] == nxt
        columns = [row[1] for row in store.conn.execute("PRAGMA table_info(takes)")]
        assert "note" in columns
    with StateStore.open_readonly(path) as reader:
        assert len(reader.records()) == 1


def test_a_file_that_is_not_a_database_gives_a_clear_error(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match=str(path)):
        StateStore.open(path)


def test_record_columns_follow_the_record_fields() -> None:
    names = [f.name for f in dataclasses.fields(TakeRecord)]
    stored_as = {"payload_json": "payload", "video_json": "video"}
    assert [stored_as.get(n, n) for n in names] == list(RECORD_COLUMNS)


# ------------------------------------------------------------------ the writer lock
def test_a_second_writer_is_refused_naming_the_pid(path: Path, store: StateStore) -> None:
    with pytest.raises(StateError) as caught:
        StateStore.open(path)
    assert str(caught.value) == f"another shotrun run is using {path} (pid {os.getpid()})"
    assert state_schema.writer_pid(path) == os.getpid()
    store.close()
    assert state_schema.writer_pid(path) is None
    StateStore.open(path).close()


_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from runner.core import log
    from runner.state import StateStore
    log.configure("error")
    store = StateStore.open(Path(sys.argv[1]))
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


def test_a_writer_in_another_process_blocks_this_one_until_it_exits(path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(StateError, match=rf"\(pid {child.pid}\)"):
            StateStore.open(path)
        with StateStore.open_readonly(path) as reader:  # readers never need the lock
            assert reader.records() == []
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
    StateStore.open(path).close()


# ------------------------------------------------------------------ transitions
def _event_names(store: StateStore, key: str) -> list[str]:
    return [event.event for event in store.events(key)]


def test_the_happy_path_commits_each_step_with_an_event(store: StateStore) -> None:
    take = make_take(tags=["act1"])
    _synced(store, take)
    key = take.key
    attempt = store.mark_submitting(key, {"model": "m", "prompt": "p"}, estimated_credits=40.5)
    assert attempt == 1
    assert store.record(key).status is TakeStatus.SUBMITTING
    store.mark_submitted(key, "task-1", credits_reserved=40.0, estimated_time=300)
    store.mark_progress(key, "processing", 40)
    store.mark_progress(key, "processing", 60)
    store.record_poll(key)
    store.mark_progress(key, "processing", 80, polled=True)
    assert store.record(key).progress == 80
    store.mark_completed(key, "https://cdn/v.mp4", link_expires_at=2_000_000_000.0)
    store.mark_downloading(key)
    store.mark_done(key, "s01/take-1.mp4", size=1234, sha256="ab" * 32, verified_duration=5.0)
    record = store.record(key)
    assert record.status is TakeStatus.DONE
    assert (record.task_id, record.attempts, record.polls) == ("task-1", 1, 2)
    assert (record.credits_estimated, record.credits_reserved, record.credits) == (40.5, 40.0, 40.0)
    assert (record.output_path, record.size, record.sha256) == ("s01/take-1.mp4", 1234, "ab" * 32)
    assert record.result_url == "https://cdn/v.mp4"
    assert record.link_expires_at == 2_000_000_000.0
    assert (record.gateway_status, record.progress) == ("completed", 100)
    assert record.tags == ("act1",)
    assert record.payload == {"model": "m", "prompt": "p"}
    assert record.submitted_at and record.completed_at and record.downloaded_at
    assert record.verified_duration == 5.0
    assert _event_names(store, key) == [
        "take_added", "take_submitting", "take_submitted", "take_progress",
        "take_completed", "take_downloading", "take_done",
    ]
    assert store.credits_committed() == 40.0


def test_failures_ambiguity_holds_and_resets(store: StateStore) -> None:
    take = make_take()
    _synced(store, take)
    key = take.key
    store.mark_submitting(key, {}, 10.0)
    store.mark_ambiguous(key, "timed out after sending")
    record = store.record(key)
    assert (record.status, record.ambiguous_attempts) == (TakeStatus.AMBIGUOUS, 1)
    assert record.last_error == "timed out after sending"
    store.mark_held(key)
    assert store.record(key).status is TakeStatus.HELD
    assert store.mark_submitting(key, {}, 10.0) == 2
    store.mark_submitted(key, "task-2")
    store.mark_failed(key, "transient", "service_error", "try later")
    record = store.record(key)
    assert (record.status, record.failure_kind) == (TakeStatus.FAILED, "transient")
    assert (record.last_error_code, record.last_error) == ("service_error", "try later")
    store.reset_for_retry(key)
    record = store.record(key)
    assert (record.status, record.task_id, record.attempts) == (TakeStatus.NEW, None, 2)
    assert _event_names(store, key)[1:] == [
        "take_submitting", "take_ambiguous", "take_held", "take_submitting", "take_submitted",
        "take_failed", "take_reset",
    ]


def test_a_request_that_never_left_is_not_an_attempt(store: StateStore) -> None:
    _synced(store)
    store.mark_submitting("s01/take-1", {}, 10.0)
    store.mark_not_sent("s01/take-1", "connection refused")
    record = store.record("s01/take-1")
    assert (record.status, record.attempts) == (TakeStatus.NEW, 0)
    assert store.credits_committed() == 0
    assert store.mark_submitting("s01/take-1", {}, 10.0) == 1


@pytest.mark.parametrize(
    ("steps", "call"),
    [
        pytest.param([], lambda s, k: s.mark_done(k, "x", 1, "a"), id="done-before-submitted"),
        pytest.param([], lambda s, k: s.mark_submitted(k, "t"), id="task-id-without-intent"),
        pytest.param(["submitting", "submitted"], lambda s, k: s.mark_submitting(k, {}, 1.0),
                     id="resubmit-with-a-task-id"),
        pytest.param(["submitting", "submitted", "completed", "done"],
                     lambda s, k: s.mark_failed(k, "transient", None, "x"), id="fail-when-done"),
    ],
)
def test_impossible_moves_are_refused(store: StateStore, steps: list[str], call: object) -> None:
    _synced(store)
    key = "s01/take-1"
    moves = {
        "submitting": lambda: store.mark_submitting(key, {}, 1.0),
        "submitted": lambda: store.mark_submitted(key, "t"),
        "completed": lambda: store.mark_completed(key, "https://x/v.mp4"),
        "done": lambda: store.mark_done(key, "x", 1, "a"),
    }
    for step in steps:
        moves[step]()
    before = store.record(key)
    with pytest.raises(StateError, match="cannot go from"):
        call(store, key)  # type: ignore[operator]
    assert store.record(key) == before


def test_an_unknown_take_is_a_clear_error(store: StateStore) -> None:
    with pytest.raises(UnknownTake, match="nope/take-1 is not in the state store"):
        store.mark_submitting("nope/take-1", {}, None)
    with pytest.raises(KeyError):
        store.record("nope/take-1")


def test_bad_failure_kind_is_refused(store: StateStore) -> None:
    _synced(store)
    with pytest.raises(ValueError, match="'weird'"):
        store.mark_failed("s01/take-1", "weird", None, "x")


def test_secrets_never_reach_the_store(store: StateStore) -> None:
    from runner.core.redact import register_secret

    register_secret("sk-supersecret-123")
    _synced(store)
    store.mark_submitting("s01/take-1", {"auth": "sk-supersecret-123"}, 1.0)
    store.mark_ambiguous("s01/take-1", "failed with key sk-supersecret-123")
    files = [p for p in store.path.parent.iterdir() if p.is_file()]
    assert any(p.name.endswith("-wal") for p in files)
    for file in files:
        assert b"sk-supersecret-123" not in file.read_bytes(), file
    assert "[REDACTED]" in store.record("s01/take-1").last_error


def test_events_are_append_only(path: Path, store: StateStore) -> None:
    _synced(store)
    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE events SET event = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM events")
    finally:
        raw.close()


# ------------------------------------------------------------------ budget ledger, uploads
def test_credits_committed_counts_every_attempt_that_may_be_billed(store: StateStore) -> None:
    takes = [make_take("a"), make_take("b"), make_take("c"), make_take("d"), make_take("e")]
    _synced(store, *takes)
    store.mark_submitting("a/take-1", {}, 40.0)
    store.mark_submitted("a/take-1", "t-a", credits_reserved=41.0)  # gateway's figure: 41
    store.mark_submitting("b/take-1", {}, 40.0)
    store.mark_submitted("b/take-1", "t-b")  # no figure: the estimate
    store.mark_submitting("c/take-1", {}, 40.0)  # in flight: the estimate
    store.mark_submitting("d/take-1", {}, 40.0)
    store.mark_ambiguous("d/take-1", "lost")  # maybe billed: the estimate
    store.mark_submitting("e/take-1", {}, 40.0)
    store.mark_failed("e/take-1", "permanent", "invalid_parameters", "refused")  # not billed
    assert store.credits_committed() == pytest.approx(41 + 40 + 40 + 40)
    store.mark_failed("a/take-1", "transient", "service_error", "x")
    store.reset_for_retry("a/take-1")
    store.mark_submitting("a/take-1", {}, 40.0)
    store.mark_submitted("a/take-1", "t-a2", credits_reserved=39.0)
    assert store.credits_committed() == pytest.approx(41 + 39 + 40 + 40 + 40)
    totals = store.totals()
    assert totals["takes"] == 5
    assert totals["submitted"] == 2 and totals["ambiguous"] == 1 and totals["failed"] == 1
    assert totals["ambiguous_submissions"] == 1
    assert totals["credits_committed"] == pytest.approx(200)


def test_credits_survive_a_fingerprint_change(store: StateStore) -> None:
    _synced(store, make_take(prompt="one"))
    store.mark_submitting("s01/take-1", {}, 40.0)
    store.mark_submitted("s01/take-1", "t1", credits_reserved=40.0)
    _synced(store, make_take(prompt="two"))
    assert store.credits_committed() == 40.0


def test_uploads_are_remembered_by_content(store: StateStore) -> None:
    assert store.get_upload("aa" * 32) is None
    store.put_upload("aa" * 32, "https://files/x.png", 1_000.0, size=10, mime="image/png")
    upload = store.get_upload("aa" * 32)
    assert upload is not None
    assert (upload.url, upload.expires_at, upload.size, upload.mime) == (
        "https://files/x.png", 1_000.0, 10, "image/png")
    store.put_upload("aa" * 32, "https://files/y.png", 2_000.0)
    assert store.get_upload("aa" * 32).url == "https://files/y.png"  # type: ignore[union-attr]
    assert [e.event for e in store.events() if e.key is None] == ["file_uploaded"] * 2


# ------------------------------------------------------------------ readers
def test_a_reader_sees_each_commit_at_once_and_cannot_write(path: Path, store: StateStore) -> None:
    _synced(store)
    with StateStore.open_readonly(path) as reader:
        assert reader.record("s01/take-1").status is TakeStatus.NEW
        store.mark_submitting("s01/take-1", {}, 1.0)
        assert reader.record("s01/take-1").status is TakeStatus.SUBMITTING
        store.mark_submitted("s01/take-1", "t")
        store.mark_progress("s01/take-1", "processing", 55)
        assert reader.record("s01/take-1").progress == 55
        assert reader.totals()["submitted"] == 1
        with pytest.raises(StateError, match="read-only"):
            reader.mark_failed("s01/take-1", "transient", None, "x")
        # The reader did not take the lock: a writer still holds it alone.
        with pytest.raises(StateError, match="another shotrun run"):
            StateStore.open(path)


def test_reading_a_store_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no run has happened yet"):
        StateStore.open_readonly(tmp_path / "missing" / "state.sqlite")
    assert not (tmp_path / "missing").exists()


def test_a_closed_store_refuses_use(store: StateStore) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        store.records()


# ------------------------------------------------------------------ crash safety
_KILLED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from runner.core import log
    from runner.state import StateStore
    from tests.helpers.state import make_take, payloads
    log.configure("error")
    store = StateStore.open(Path(sys.argv[1]))
    takes = [make_take("s01"), make_take("s02")]
    store.sync(takes, payloads(takes))
    store.mark_submitting("s01/take-1", {"prompt": "p"}, 40.0)
    store.mark_submitted("s01/take-1", "task-survives", credits_reserved=40.0)
    store.mark_submitting("s02/take-1", {"prompt": "p"}, 40.0)
    print("committed", flush=True)
    sys.stdin.readline()
    """
)


def test_a_commit_survives_sigkill_and_the_next_run_sees_the_lost_answer(path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(path)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "committed"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert state_schema.writer_pid(path) is None  # its pid is left behind, but it is dead
    with StateStore.open_readonly(path) as reader:  # a reader recovers the killed WAL too
        assert reader.record("s01/take-1").task_id == "task-survives"
        assert reader.record("s02/take-1").status is TakeStatus.SUBMITTING
    with StateStore.open(path) as store:  # the lock died with the process
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store.record("s01/take-1").task_id == "task-survives"
        takes = [make_take("s01"), make_take("s02")]
        plans = {p.key: p for p in store.sync(takes, payloads(takes))}
        assert (plans["s01/take-1"].action, plans["s01/take-1"].reason) == ("poll", "in flight")
        lost = plans["s02/take-1"]
        assert (lost.action, lost.reason) == ("submit", "ambiguous submission")
        assert lost.record.status is TakeStatus.AMBIGUOUS
        assert store.totals()["ambiguous_submissions"] == 1
        assert store.credits_committed() == 80.0
        assert "take_ambiguous" in _event_names(store, "s02/take-1")


def test_a_store_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "renders"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(StateError, match="cannot create the state store"):
        StateStore.open(store_path_for(blocker))


# ------------------------------------------------------------------ any sequence of moves
_MOVES = {
    "submitting": lambda s, k: s.mark_submitting(k, {"p": 1}, 10.0),
    "submitted": lambda s, k: s.mark_submitted(k, "task", 12.0),
    "not_sent": lambda s, k: s.mark_not_sent(k, "refused to connect"),
    "ambiguous": lambda s, k: s.mark_ambiguous(k, "lost"),
    "held": lambda s, k: s.mark_held(k),
    "completed": lambda s, k: s.mark_completed(k, "https://cdn/v.mp4"),
    "downloading": lambda s, k: s.mark_downloading(k),
    "failed": lambda s, k: s.mark_failed(k, "transient", "service_error", "x"),
    "done": lambda s, k: s.mark_done(k, "v.mp4", 1, "ab"),
    "reset": lambda s, k: s.reset_for_retry(k),
}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.sampled_from(sorted(_MOVES)), max_size=25))
def test_any_sequence_of_moves_keeps_the_ledger_and_the_log_honest(
    tmp_path_factory: pytest.TempPathFactory, moves: list[str]
) -> None:
    path = store_path_for(tmp_path_factory.mktemp("prop"))
    with StateStore.open(path) as store:
        _synced(store)
        key = "s01/take-1"
        committed = 0.0
        sent = 0
        for move in moves:
            before, events = store.record(key), len(store.events())
            try:
                _MOVES[move](store, key)
            except StateError:
                assert store.record(key) == before  # a refused move changes nothing
                assert len(store.events()) == events
                continue
            assert len(store.events()) == events + 1  # one event per move
            sent += {"submitting": 1, "not_sent": -1}.get(move, 0)
            assert store.record(key).attempts == sent
            released = before.status is TakeStatus.SUBMITTING and move in ("failed", "not_sent")
            if not released:  # only an answered refusal releases an in-flight estimate
                assert store.credits_committed() >= committed
            committed = store.credits_committed()
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
