"""The store's tests run on both engines: the embedded SQLite file and a PostgreSQL database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.state import StateStore, store_path_for

OpenStore = Callable[..., StateStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest) -> Iterator[OpenStore]:
    """``open_store(output_dir, clock=...)``: a writer store of the parametrized engine (the
    PostgreSQL one in a new database of the session's throwaway server)."""
    opened: list[StateStore] = []

    def opener(output_dir: Path, clock: Callable[[], float] = time.time) -> StateStore:
        if request.param == "sqlite":
            store = StateStore.open(store_path_for(output_dir), clock=clock)
        else:
            from runner.state.pgstore import PgStore
            store = PgStore.open_url(request.getfixturevalue("pg_url"), clock=clock)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()
