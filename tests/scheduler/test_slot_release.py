"""A slot frees when the gateway finishes the task, not after the take's own bookkeeping.

The account's cap counts tasks in flight *at the gateway*: once a status query says a task
completed (or failed), the next creation may go at once, before this take commits its
completion and starts its download. Ordering is read from the store's append-only events
(their row order), so nothing here is timed.
"""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import replace
from pathlib import Path

from runner.emulator import run_emulator
from runner.state import store_path_for
from tests.helpers.engine import FAST, Shot, fast_emulator, make_manifest, run_engine


def _events(manifest_path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{manifest_path}?mode=ro", uri=True)
    try:
        return [(key, event) for key, event in conn.execute(
            "SELECT key, event FROM events WHERE event IN ('take_submitting', "
            "'take_completed', 'take_failed') ORDER BY rowid")]
    finally:
        conn.close()


async def test_the_next_creation_goes_before_the_finished_take_commits(tmp_path: Path
                                                                       ) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"shot {n}") for n in range(4)])
    settings = replace(FAST, concurrency=1)
    async with run_emulator(fast_emulator(concurrency_cap=1)) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert out.summary.all_done and out.summary.done == 4
    # The slot was really free at the gateway: never refused, never two at once.
    assert stats["rate_limited"] == 0 and stats["max_in_flight"] == 1
    events = _events(store_path_for(manifest))
    submitted = [key for key, event in events if event == "take_submitting"]
    assert len(submitted) == 4
    for earlier, later in itertools.pairwise(submitted):
        completed = events.index((earlier, "take_completed"))
        assert events.index((later, "take_submitting")) < completed, events
