"""A team's store whose connection the server dropped connects again (issue 24's review)."""

from __future__ import annotations

import psycopg
import pytest

from runner.core.errors import StateError
from runner.state.pgstore import PgStore
from tests.helpers.state import make_take, payloads


def _drop_connections(url: str) -> None:
    """What a server restart or an idle timeout does to the store's connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE application_name = 'shotrun'")


def test_a_snapshot_read_and_a_write_after_a_dropped_connection(pg_url: str) -> None:
    store = PgStore.open_url(pg_url)
    try:
        takes = [make_take("s01")]
        store.sync(takes, payloads(takes))
        _drop_connections(pg_url)
        with store._read() as conn:  # BEGIN ISOLATION LEVEL …: sent again on a new connection
            assert conn.execute("SELECT COUNT(*) FROM takes").fetchone()[0] == 1
        _drop_connections(pg_url)
        store.mark_submitting(takes[0].key, {"p": 1}, 10.0)  # BEGIN: likewise
        assert store.record(takes[0].key).status.value == "submitting"
    finally:
        store.close()


def test_a_statement_inside_a_transaction_is_never_sent_again(pg_url: str) -> None:
    store = PgStore.open_url(pg_url)
    try:
        with pytest.raises(StateError), store._write() as conn:
            _drop_connections(pg_url)
            conn.execute("INSERT INTO claims (key, runner, claimed_at) VALUES ('k', 'r', 0)")
        assert store._rows("SELECT COUNT(*) FROM claims")[0][0] == 0  # a new connection
    finally:
        store.close()
