"""A team's store with real content: a run's SQLite store copied row for row into PostgreSQL.

The two engines share one schema (:mod:`runner.state.pgschema`), so every table of the file
goes into the database as it is; what the database made itself (its schema version and the
``application`` mark) is left alone. This is the tests' way to a database store holding a
finished run, until ``run --store`` and ``store copy`` do it for real.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from runner.state.pgstore import PgStore

_MADE_BY_THE_DATABASE = {"schema_version"}


def copy_into(store_file: Path, url: str) -> None:
    """Copy every row of the SQLite store ``store_file`` into the (new) database at ``url``."""
    PgStore.open_url(url).close()  # the schema
    source = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%'")]
        with psycopg.connect(url, autocommit=False) as target:
            for table in tables:
                if table in _MADE_BY_THE_DATABASE:
                    continue
                cursor = source.execute(f"SELECT * FROM {table}")  # names from the file itself
                names = [column[0] for column in cursor.description]
                marks = ", ".join(["%s"] * len(names))
                rows = cursor.fetchall()
                if rows:
                    target.cursor().executemany(
                        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"
                        " ON CONFLICT DO NOTHING", rows)
            # Rows came with their ids: the database's own counters go on after them.
            for table, column in target.execute(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND is_identity = 'YES'"
            ).fetchall():
                target.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                    f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)")
            target.commit()
    finally:
        source.close()
