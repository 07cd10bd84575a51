"""What a run of a manifest would do, read from the state store without writing (``plan``).

``plan`` is the dry run people read before paying, so it must answer the questions a run
answers only once it has started: which takes it sends again and why, which takes it leaves
alone, what the manifest has already spent, whether what remains fits under the cap, and which
paid renders still at the gateway a new render would replace. Each answer mirrors the code the
run uses rather than restating it: :func:`runner.state.decide.preview` for the action,
:data:`runner.state.sync.UNSAVED_PAID` for an abandoned task,
:meth:`runner.state.StateStore.credits_committed` for the ledger the run's
:class:`runner.state.budget.BudgetGuard` starts from, and the guard's own test
(:meth:`~runner.state.budget.BudgetGuard.try_reserve`, called) for the budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.core.model import Manifest
from runner.core.money import CREDITS, Figure, unit_of
from runner.state import StateStore, TakeRecord, TakeStatus
from runner.state.budget import BudgetGuard
from runner.state.decide import collectable, preview
from runner.state.kept import on_disk_action
from runner.state.location import store_at
from runner.state.records import TakeAction
from runner.state.sync import UNSAVED_PAID
from runner.wire.payload import fingerprint_payload


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A task a run would stop following because its take changed: it may have been paid."""

    task_id: str | None
    status: str  # the record's status when the run replaces it (submitted, ambiguous...)


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """What the state store knows of a take, for the plan's status columns.

    ``state`` is what happens or happened (done, in flight, new, changed, failed: e.g. a
    ``runner.state.TakePlan``'s action or its record's status) and ``reason`` why it will be
    (re)run (prompt changed, asset content changed...). ``action`` is the run's own word
    (skip, poll, download, submit, retry, hold, failed) when known: the totals count by it.
    ``abandons`` is set when running the take again leaves a paid task uncollected. Not to be
    confused with ``runner.state.TakeStatus``, the store's life-cycle enum.
    """

    state: str
    reason: str = ""
    action: TakeAction | None = None  # None: a status given without one
    abandons: Abandoned | None = None
    # The take's own figure (runner.core.money.take_figure) when a run keeps its record (done, in
    # flight, held, failed): what it was charged, not what a new render would cost.
    figure: Figure | None = None


# The run's action -> the word the plan shows.
_A = TakeAction
STATE_WORDS = {_A.SKIP: "done", _A.POLL: "in flight", _A.DOWNLOAD: "in flight",
               _A.SUBMIT: "will run", _A.RETRY: "will retry", _A.HOLD: "held",
               _A.FAILED: "failed", _A.RESTORE: "restore"}
# Buckets of the totals, by action, then (for statuses given without one) by word.
_BY_ACTION = {_A.SKIP: "done", _A.POLL: "in_flight", _A.DOWNLOAD: "in_flight", _A.SUBMIT: "run",
              _A.RETRY: "run", _A.HOLD: "not_run", _A.FAILED: "not_run",
              _A.RESTORE: "restore"}  # a kept render put back: done at no cost
_BY_WORD = {"done": "done", "in flight": "in_flight", "held": "not_run", "failed": "not_run"}


def bucket(status: PlanStatus | None) -> str:
    """``run``, ``done``, ``restore``, ``in_flight`` or ``not_run``: what a run does with the
    take's cost.

    Without a status (no store) every take runs. Held and failed takes are left as they are
    by a plain ``shotrun run`` (no ``--retry-failed``), so they cost nothing.
    """
    if status is None:
        return "run"
    if status.action:
        return _BY_ACTION.get(status.action, "run")
    return _BY_WORD.get(status.state, "run")


def abandoned_task(record: TakeRecord) -> Abandoned | None:
    """The paid task a new render of ``record``'s take leaves behind, if any.

    Mirrors ``sync``: a record still ``submitting`` is first found ambiguous (its answer was
    lost), then archived; a record in :data:`UNSAVED_PAID` may have been billed and is not
    collected once its take changed.
    """
    status = record.status
    if status is TakeStatus.SUBMITTING:
        status = TakeStatus.AMBIGUOUS
    if status is TakeStatus.FAILED and collectable(record):  # paid, its result not saved yet
        return Abandoned(record.task_id, "paid but not collected yet")
    if status.value not in UNSAVED_PAID:
        return None
    return Abandoned(record.task_id, status.value)


def abandon_warning(key: str, abandoned: Abandoned, *, planned: bool = False) -> str:
    """The one warning for a paid render left uncollected: ``run`` says it happened, ``plan``
    that a run would do it (``planned``). Without the "shotrun: warning:" head."""
    task = abandoned.task_id or "a creation whose answer was lost"
    fate = ("a run would abandon that paid render, not collect it (its record would be kept"
            " in the take's history)" if planned else
            "that paid render is abandoned, not collected (its record is kept in the take's"
            " history)")
    return f"{key} changed while its task ({task}) was {abandoned.status}: {fate}"


# Why a take in flight at the built-in emulator is created again: its tasks lived in the
# process of the run that started it (runner.providers.session), and died with it.
ENDED_WITH_EMULATOR = "its task ended with the built-in emulator"
_AT_THE_EMULATOR = frozenset({TakeAction.POLL, TakeAction.DOWNLOAD})


@dataclass(frozen=True, slots=True)
class StoreView:
    """What ``plan`` reads from an existing store: per-take statuses and credits spent."""

    statuses: dict[str, PlanStatus]
    spent: float  # StateStore.credits_committed: what the run's BudgetGuard starts from
    unit: str = CREDITS  # of ``spent``: the manifest's provider's (runner.core.money)


def _contents(store: StateStore, manifest: Manifest, unit: str) -> tuple[
        dict[str, TakeRecord], dict[str, tuple[str, dict[str, Any] | None]], dict[str, str],
        float]:
    """What ``plan`` needs of the store: records and fingerprints by take, the takes whose
    continuity source changed, and what was committed in ``unit``."""
    return ({record.key: record for record in store.records()}, store.fingerprints(),
            store.source_changes(manifest.takes), store.credits_committed(unit))


def read_store(manifest: Manifest, *, built_in: bool = False) -> StoreView | None:
    """What a run would do with each take, from the state store (read-only); None if no store.

    The store is read without the writer's lock, so ``plan`` works beside a live run. A
    missing or empty store is read as the run would rebuild it from the output folder
    (:func:`runner.state.rebuild.readable_store`): done takes are not "new" for the plan.
    ``built_in``: the run would use the built-in emulator, whose tasks end with the process
    that served them; unless a run is going now, a take left in flight there is created
    again (and costs its estimate again), as the run will do.
    """
    from runner.state.rebuild import readable_store

    unit = unit_of(manifest.api.provider)
    at = store_at(manifest)
    if at.shared:  # a team's database: no folder to rebuild it from, no lock to look at
        from runner.state.roster import live_runners  # psycopg: only for a database

        with at.open_reader() as store:
            records, stored, changed_sources, spent = _contents(store, manifest, unit)
            running = bool(live_runners(store))
    else:
        with readable_store(at.path, manifest.output_dir) as path:
            if path is None:
                return None
            with StateStore.open_readonly(path) as store:
                records, stored, changed_sources, spent = _contents(store, manifest, unit)
        running = at.run_pid() is not None
    emulator_gone = built_in and not running
    statuses: dict[str, PlanStatus] = {}
    now = time.time()  # a paid result's lifetime is judged as a run started now would
    for take in manifest.takes:
        record = records.get(take.key)
        payload = fingerprint_payload(take.request, manifest.api.wire, manifest.api.provider)
        old = stored.get(take.key)
        action, reason = preview(record, old, take.fingerprint, payload, now=now)
        # Its files on disk: a kept render to restore, a done file lost (runner.state.kept).
        action, reason = on_disk_action(manifest.output_dir, take, record, action, reason)
        abandons = None
        if record is not None and old is not None and old[0] != take.fingerprint and not (
                record.status is TakeStatus.NEW and record.attempts == 0):
            abandons = abandoned_task(record)  # sync archives this record
        if emulator_gone and action in _AT_THE_EMULATOR:
            action, reason = TakeAction.SUBMIT, ENDED_WITH_EMULATOR
        figure = None
        if record is not None and old is not None and old[0] == take.fingerprint:
            figure = record.figure(unit)
        statuses[take.key] = PlanStatus(STATE_WORDS[action], reason, action,
                                        abandons, figure)
    for key, reason in changed_sources.items():  # continuity: a source rendered anew
        record = records.get(key)
        statuses[key] = PlanStatus(STATE_WORDS[_A.SUBMIT], reason, _A.SUBMIT,
                                   None if record is None else abandoned_task(record))
    return StoreView(statuses, spent, unit)


@dataclass
class Outlook:
    """The totals of a plan split by what a run does, and the budget judged as the run does.

    ``spent`` is the manifest's whole-life ledger; the takes to run add their estimates in
    order, as the run's guard reserves them, and the run stops submitting at the first that
    would pass the cap: ``fits`` counts the takes before it.
    """

    max_credits: float | None
    spent: float = 0.0
    unit: str = CREDITS  # of every figure here: the manifest's provider's (runner.core.money)
    counts: dict[str, int] = field(
        default_factory=lambda: {"run": 0, "done": 0, "in_flight": 0, "not_run": 0,
                                 "restore": 0})
    run_seconds: int = 0
    run_credits: float = 0.0
    run_unpriced: int = 0
    fits: int = 0
    # The run's own guard, fed the takes in run order: the first it refuses stops the count.
    _guard: BudgetGuard = field(init=False)

    def __post_init__(self) -> None:
        self._guard = BudgetGuard(self.max_credits, committed=self.spent, unit=self.unit)

    def add(self, status: PlanStatus | None, credits: float | None, seconds: int) -> None:
        """Count one take (in the order a run would reach it)."""
        where = bucket(status)
        self.counts[where] += 1
        if where != "run":
            return
        self.run_seconds += seconds
        self.run_unpriced += credits is None
        if self._guard.try_reserve(str(self.counts["run"]), credits):
            self.fits += 1
        self.run_credits += credits or 0.0  # an unknown estimate reserves nothing

    @property
    def after_run(self) -> float:
        """Spent so far plus the estimate of every take to run."""
        return self.spent + self.run_credits

    @property
    def within_budget(self) -> bool:
        """True when every take to run fits under the cap, after what was already spent."""
        return self.max_credits is None or self.after_run <= self.max_credits + 1e-9

    def to_json(self, abandoned: Iterable[tuple[str, Abandoned]] = ()) -> dict[str, Any]:
        """The ``this_run`` object of ``plan --json``."""
        return {
            "will_run": {"takes": self.counts["run"], "seconds": self.run_seconds,
                         "credits": round(self.run_credits, 4),
                         "unpriced_takes": self.run_unpriced},
            "already_done": {"takes": self.counts["done"]},
            # Kept renders of the same fingerprint, put back at no cost (runner.state.kept).
            "restore": {"takes": self.counts["restore"], "credits": 0},
            "in_flight": {"takes": self.counts["in_flight"]},
            "not_run": {"takes": self.counts["not_run"]},
            "credits_spent": round(self.spent, 4),
            "credits_after_run": round(self.after_run, 4),
            "max_credits": self.max_credits,
            "unit": self.unit,
            "within_budget": self.within_budget,
            "takes_within_cap": self.fits,
            "abandoned_tasks": [
                {"key": key, "task_id": item.task_id, "status": item.status,
                 "message": abandon_warning(key, item, planned=True)}
                for key, item in abandoned
            ],
        }


def outlook(manifest: Manifest, rows: Iterable[tuple[PlanStatus | None, float | None, int]],
            spent: float = 0.0) -> Outlook:
    """The :class:`Outlook` of (status, credits, billed seconds) rows in run order, against
    the cap of the unit the manifest's provider bills in."""
    unit = unit_of(manifest.api.provider)
    found = Outlook(manifest.budget.cap(unit), spent, unit)
    for status, credits, seconds in rows:
        found.add(status, credits, seconds)
    return found


def abandoned_of(statuses: Mapping[str, PlanStatus] | None,
                 keys: Iterable[str]) -> list[tuple[str, Abandoned]]:
    """(key, task) for each of ``keys`` whose new render leaves a paid task behind."""
    if statuses is None:
        return []
    found = []
    for key in keys:
        status = statuses.get(key)
        if status is not None and status.abandons is not None:
            found.append((key, status.abandons))
    return found
