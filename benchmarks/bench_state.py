"""State store figures: syncing a big manifest, the cost of one durable transition, reading.

A resumed run of 20,000 takes must start at once (sync well under a second when nothing
changed), and each transition is an fsync'd commit, so its cost bounds the submit pace.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from benchmarks.table import row
from runner.core.model import Take, TakeRequest
from runner.state import StateStore, store_path_for
from runner.wire.payload import build_payload, fingerprint, fingerprint_resolver


def sample_takes(count: int) -> list[Take]:
    """``count`` text-only takes, three per shot (the team benchmark uses them too)."""
    takes = []
    for i in range(count):
        request = TakeRequest(prompt=f"shot {i // 3}: the coast at dawn", multi_prompt=None)
        takes.append(Take(shot_id=f"s{i // 3:05d}", take=1 + i % 3, request=request,
                          fingerprint=fingerprint(request), tags=("act1",)))
    return takes


def _timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(quick: bool = False) -> list[dict[str, Any]]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    count = 20_000
    takes = sample_takes(count)
    payloads = {t.key: build_payload(t.request, fingerprint_resolver) for t in takes}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = store_path_for(Path(tmp))
        with StateStore.open(path) as store:
            first = _timed(lambda: store.sync(takes, payloads))
            again = min(_timed(lambda: store.sync(takes, payloads)) for _ in range(3))
            rows.append(row(f"state: first sync of {count} takes (s)", first, "informative"))
            rows.append(row(f"state: re-sync of {count} unchanged takes (s)", again, "< 1 s",
                            passed=again < 1.0))
            commits = []
            for take in takes[: 50 if quick else 300]:
                commits.append(_timed(lambda k=take.key: store.mark_submitting(k, {}, 40.5)))
            median = statistics.median(commits) * 1000
            rows.append(row("state: one durable transition, median (ms)", median,
                            "informative", "fsync-bound"))
            with StateStore.open_readonly(path) as reader:
                read = _timed(reader.records)
            rows.append(row(f"state: read {count} records read-only (s)", read, "< 1 s",
                            passed=read < 1.0))
    return rows
