"""Who works on a team's store now, as a reader (``status``, ``plan``, ``gc``) sees it.

A runner is live while its lease (``runners.lease_until``) is ahead of the *database's*
clock, the same rule claims and seats follow (:mod:`runner.state.team`): the reader's own
clock may disagree with the runners'. Each live runner is shown with the takes it holds
(its claims), so that "who is rendering what" can be answered from any machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from runner.state.pgstore import PgStore
from runner.state.protocol import Store
from runner.state.team import DB_NOW


@dataclass(frozen=True, slots=True)
class LiveRunner:
    """One ``shotrun run`` process working on the store, and what it holds."""

    id: str  # host:pid:random, as the runner named itself
    host: str
    pid: int
    takes: int  # the takes it has claimed
    lease_left: float  # seconds before its claims go to another runner, unless renewed

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "lease_left": round(self.lease_left, 1)}


def live_runners(store: Store) -> list[LiveRunner]:
    """The runners whose lease is live, the longest-running first (none on the embedded
    file: its one run is told by its lock, :meth:`runner.state.location.StoreAt.run_pid`)."""
    if not isinstance(store, PgStore):
        return []
    rows = store._rows(
        f"SELECT r.id, r.host, r.pid, r.lease_until - {DB_NOW},"
        " (SELECT COUNT(*) FROM claims c WHERE c.runner = r.id)"
        f" FROM runners r WHERE r.lease_until > {DB_NOW} ORDER BY r.started_at, r.id")
    return [LiveRunner(str(row[0]), str(row[1]), int(row[2]), int(row[4]), float(row[3]))
            for row in rows]
