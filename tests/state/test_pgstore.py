"""The team's store on PostgreSQL: what opening refuses, and the password kept out of sight."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from runner.core.errors import StateError
from runner.state import TakeStatus
from runner.state.dbfile import SCHEMA_VERSION
from runner.state.pgstore import PgStore
from tests.helpers.postgres import PgServer
from tests.helpers.state import make_take, payloads


def _refusal(url: str) -> str:
    with pytest.raises(StateError) as refused:
        PgStore.open_url(url)
    return str(refused.value)


def test_a_failed_statement_rolls_back_and_the_store_goes_on(pg_url: str) -> None:
    with PgStore.open_url(pg_url) as store:
        takes = [make_take("s01")]
        store.sync(takes, payloads(takes))
        before = store.record("s01/take-1")
        with pytest.raises(StateError, match="state store"), store._write() as conn:
            conn.execute("UPDATE takes SET status = 'submitting' WHERE key = ?", ("s01/take-1",))
            conn.execute("INSERT INTO nowhere VALUES (1)")
        assert store.record("s01/take-1") == before
        assert not store.conn.in_transaction
        store.mark_submitting("s01/take-1", {"p": 1}, 8.0)
        assert store.record("s01/take-1").status is TakeStatus.SUBMITTING


def test_a_reader_refuses_to_write(pg_url: str) -> None:
    PgStore.open_url(pg_url).close()
    with PgStore.open_url(pg_url, readonly=True) as reader, \
            pytest.raises(StateError, match="read-only"):
        reader.record_provider("kling")


def test_a_wrong_password_is_one_line_without_the_password(pg_server: PgServer) -> None:
    url = pg_server.url("postgres", password="not-the-Passw0rd")
    message = _refusal(url)
    assert "refused the password" in message and "PGPASSWORD" in message
    assert "not-the-Passw0rd" not in message and pg_server.password not in message
    assert "\n" not in message


def test_an_unreachable_server_and_a_missing_database_say_what_to_do(
    pg_server: PgServer,
) -> None:
    closed = pg_server.url("postgres").replace(f":{pg_server.port}/", ":1/")
    message = _refusal(closed)
    assert message.startswith("cannot reach the database") and "nothing was sent" in message
    assert pg_server.password not in message
    message = _refusal(pg_server.url("no_such_db"))
    assert "does not exist" in message and "createdb no_such_db" in message


def test_another_application_s_database_is_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    message = _refusal(pg_url)
    assert "another application's tables" in message
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert tables == {"invoices"}


def test_a_store_of_a_newer_shotrun_is_refused(pg_url: str) -> None:
    PgStore.open_url(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    message = _refusal(pg_url)
    assert "newer than this shotrun" in message and "upgrade shotrun" in message


def test_runners_opening_an_empty_database_at_once_make_one_schema(pg_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PgStore.open_url(pg_url).close()
        except BaseException as exc:  # pragma: no cover - the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]


def test_money_keeps_its_digits(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL's REAL is a four-byte float: the store's figures are double precision."""
    with PgStore.open_url(pg_url) as store:
        takes = [make_take("s01")]
        store.sync(takes, payloads(takes))
        store.mark_submitting("s01/take-1", {"p": 1}, 1234567.891)
        store.mark_submitted("s01/take-1", "t-1", credits_reserved=1234567.891)
        assert store.credits_committed() == 1234567.891
        assert store.totals()["attempts"] == 1


def test_a_lost_creation_found_or_never_made_is_recorded_on_postgresql(pg_url: str) -> None:
    """The moves that take an ambiguous attempt back (Kling's lookup of a lost creation)
    use SQL PostgreSQL speaks: SQLite's two-argument MAX() stopped a team's runner."""
    with PgStore.open_url(pg_url) as store:
        takes = [make_take("s01"), make_take("s02")]
        store.sync(takes, payloads(takes))
        for take in takes:
            store.mark_submitting(take.key, {"p": 1}, 8.0)
            store.mark_ambiguous(take.key, "the answer was lost")
        assert store.record("s01/take-1").ambiguous_attempts == 1
        store.mark_submitted("s01/take-1", "task-found", found=True)
        store.mark_never_created("s02/take-1", "looked up: no such task")
        found, never = store.record("s01/take-1"), store.record("s02/take-1")
    assert found.status is TakeStatus.SUBMITTED and found.ambiguous_attempts == 0
    assert never.status is TakeStatus.NEW and never.ambiguous_attempts == 0
    assert never.attempts == 0


def test_a_kept_render_is_restored_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    with PgStore.open_url(pg_url) as store:
        take = make_take("s01")
        store.sync([take], payloads([take]))
        store.mark_restored(take.key, take.fingerprint, tmp_path / "s01.mp4", "ab" * 32, 10,
                            {"task_id": "t-1", "attempts": 2}, reason="kept")
        record = store.record(take.key)
    assert record.status is TakeStatus.DONE and record.attempts == 2
