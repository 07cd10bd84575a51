"""``store copy``: a store moved SQLite -> PostgreSQL -> SQLite keeps every record, and every
refusal writes nothing."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runner.core.errors import StateError, StoreLocked
from runner.state import StateStore, store_path_for
from runner.state.copy import copy_store
from runner.state.pgstore import PgStore
from tests.helpers.postgres import PgServer
from tests.helpers.state import fill_solo_store as fill
from tests.helpers.state import make_take, payloads
from tests.helpers.state import store_snapshot as snapshot


def solo_store(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = store_path_for(tmp_path / "solo")
    with StateStore.open(path) as store:
        fill(store)
        return path, snapshot(store)


def test_sqlite_to_postgres_to_sqlite_keeps_every_record(tmp_path: Path, pg_url: str) -> None:
    path, before = solo_store(tmp_path)
    assert before["committed"] == {"credits": 16.0, "units": 3.25}
    copied = copy_store(path, pg_url)
    assert (copied.count("takes"), copied.count("picks"), copied.count("notes"),
            copied.count("events")) == (4, 1, 1, len(before["events"]))
    with PgStore.open_url(pg_url) as team:
        assert snapshot(team) == before
        assert not team._rows("SELECT * FROM runners")
    back = store_path_for(tmp_path / "again")
    copy_store(pg_url, back)
    assert stat.S_IMODE(os.stat(back).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(back.parent).st_mode) == 0o700
    assert sorted(p.name for p in back.parent.iterdir()) == ["state.lock", "state.sqlite"]
    with StateStore.open(back) as again:
        assert snapshot(again) == before


def test_new_rows_after_the_copy_take_ids_past_the_copied_ones(
    tmp_path: Path, pg_url: str,
) -> None:
    path, before = solo_store(tmp_path)
    copy_store(path, pg_url)
    last = before["events"][-1].id
    with PgStore.open_url(pg_url) as team:
        team.reset_for_retry("s03/take-1")
        team.mark_submitting("s03/take-1", {}, 8.0)
        assert [e.id for e in team.events(since_id=last)] == [last + 1, last + 2]
        assert team.committed_by_unit()["credits"] == before["committed"]["credits"] + 8.0


def test_a_target_holding_takes_is_refused_untouched(tmp_path: Path, pg_url: str) -> None:
    path, before = solo_store(tmp_path)
    with PgStore.open_url(pg_url) as team:
        takes = [make_take("x01")]
        team.sync(takes, payloads(takes))
        held = snapshot(team)
    with pytest.raises(StateError, match="already holds 1 takes") as refused:
        copy_store(path, pg_url)
    assert "nothing was written" in str(refused.value) and "\n" not in str(refused.value)
    with PgStore.open_url(pg_url) as team:
        assert snapshot(team) == held
    with StateStore.open(path) as solo:  # the source untouched too
        assert snapshot(solo) == before


def test_a_sqlite_target_holding_takes_or_any_record_is_refused(tmp_path: Path) -> None:
    path, _ = solo_store(tmp_path)
    other, held = solo_store(tmp_path / "b")
    with pytest.raises(StateError, match="already holds 4 takes"):
        copy_store(path, other)
    with StateStore.open(other) as store:
        assert snapshot(store) == held
    uploads_only = store_path_for(tmp_path / "c")
    with StateStore.open(uploads_only) as store:
        store.put_upload("ef" * 32, "https://uploads.example/b.png", None)
    with pytest.raises(StateError, match="holds no takes but already holds 1 uploads"):
        copy_store(path, uploads_only)


def test_a_source_a_run_is_writing_is_refused(tmp_path: Path, pg_url: str) -> None:
    path, _ = solo_store(tmp_path)
    with StateStore.open(path), pytest.raises(StoreLocked) as refused:
        copy_store(path, pg_url)
    assert f"pid {os.getpid()}" in str(refused.value)
    assert "copy once that run has ended" in str(refused.value)
    with psycopg.connect(pg_url) as conn:  # nothing written: not even the schema
        assert conn.execute("SELECT COUNT(*) FROM information_schema.tables"
                            " WHERE table_schema = 'public'").fetchone() == (0,)


def test_a_team_database_with_a_live_runner_is_refused(tmp_path: Path, pg_url: str) -> None:
    path, _ = solo_store(tmp_path)
    copy_store(path, pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO runners (id, host, pid, started_at, lease_until)"
                     " VALUES ('r1', 'h', 1, %s, %s)", (time.time(), time.time() + 60))
    target = store_path_for(tmp_path / "back")
    with pytest.raises(StoreLocked, match="runners are using it: copy once they end"):
        copy_store(pg_url, target)
    assert not target.exists()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # its lease ran out: it is over
        conn.execute("UPDATE runners SET lease_until = %s", (time.time() - 1,))
    assert copy_store(pg_url, target).count("takes") == 4


def test_the_same_store_twice_is_refused(tmp_path: Path, pg_server: PgServer,
                                         pg_url: str) -> None:
    path, _ = solo_store(tmp_path)
    with pytest.raises(StateError, match="the same store"):
        copy_store(path, path)
    with pytest.raises(StateError, match="the same store"):
        copy_store(path, tmp_path / "solo" / ".." / "solo" / ".shotrun" / "state.sqlite")
    copy_store(path, pg_url)
    by_name = pg_url.replace("@127.0.0.1:", "@localhost:")
    with pytest.raises(StateError, match="the same database") as refused:
        copy_store(pg_url, by_name)
    assert pg_server.password not in str(refused.value)


def test_an_empty_or_missing_source_is_refused_and_nothing_is_created(
    tmp_path: Path, pg_url: str,
) -> None:
    target = store_path_for(tmp_path / "target")
    with pytest.raises(StateError, match="no store at"):
        copy_store(store_path_for(tmp_path / "nowhere"), target)
    with pytest.raises(StateError, match="holds no shotrun store"):
        copy_store(pg_url, target)
    with psycopg.connect(pg_url) as conn:  # the empty database was left empty
        assert conn.execute("SELECT COUNT(*) FROM information_schema.tables"
                            " WHERE table_schema = 'public'").fetchone() == (0,)
    empty = store_path_for(tmp_path / "empty")
    StateStore.open(empty).close()
    with pytest.raises(StateError, match="holds no takes: nothing to copy"):
        copy_store(empty, target)
    assert not (tmp_path / "target").exists() and not (tmp_path / "nowhere").exists()


def test_the_source_s_settings_replace_the_target_s_even_an_absent_salt(
    tmp_path: Path, pg_url: str,
) -> None:
    path, _ = solo_store(tmp_path)
    conn = sqlite3.connect(path)  # a store from before salts, creations already sent
    conn.execute("DELETE FROM meta")  # nor the provider: no meta row at all
    conn.commit()
    conn.close()
    with StateStore.open(path) as solo:
        assert solo.client_salt() == ""
    with PgStore.open_url(pg_url) as team:  # an empty team store that made a salt of its own
        assert team.client_salt() != ""
        team.record_provider("kling")
    copy_store(path, pg_url)
    with PgStore.open_url(pg_url) as team:
        assert team.client_salt() == ""  # the ids of the solo creations, unchanged
        assert team.last_provider() is None


def test_a_target_with_a_live_runner_is_refused(tmp_path: Path, pg_url: str) -> None:
    path, _ = solo_store(tmp_path)
    PgStore.open_url(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO runners (id, host, pid, started_at, lease_until)"
                     " VALUES ('r1', 'h', 1, %s, %s)", (time.time(), time.time() + 60))
    with pytest.raises(StoreLocked, match="runners are using it"):
        copy_store(path, pg_url)


def test_a_sqlite_copy_goes_on_numbering_after_the_copied_rows(
    tmp_path: Path, pg_url: str,
) -> None:
    path, before = solo_store(tmp_path)
    copy_store(path, pg_url)
    back = store_path_for(tmp_path / "back")
    copy_store(pg_url, back)
    last = before["events"][-1].id
    with StateStore.open(back) as store:
        store.reset_for_retry("s03/take-1")
        assert [e.id for e in store.events(since_id=last)] == [last + 1]
