"""The shared state of one run that every step (submit, poll, download) reads and updates.

The engine builds one :class:`RunContext`; the step modules receive it instead of reaching
into the engine, so each step can be read (and tested) on its own. Only the steps call the
store's transition methods, one committed transition per move, so "only the scheduler moves
a take" holds by construction.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog

from runner.core.model import Manifest, Take
from runner.core.redact import bounded
from runner.media.observed import OutputExpectations
from runner.scheduler.backoff import BackoffPolicy
from runner.scheduler.calibration import Calibration
from runner.scheduler.crew import Crew
from runner.scheduler.limits import AimdLimiter, DownloadSlots, TokenBucket
from runner.scheduler.polling import PollPolicy
from runner.scheduler.snapshot import EventSink, TakeEvent, TakeProgress
from runner.scheduler.uploads import UploadCache
from runner.state import outputs
from runner.state.budget import BudgetGuard
from runner.state.intents import IntentLog
from runner.state.protocol import Store
from runner.wire.protocol import Gateway

log = structlog.get_logger()

LINK_LIFETIME = 24 * 3600.0  # result links, from completion (docs/gateway-api.md)
RECENT_DURATIONS = 500  # task times kept for the ETA: recent ones say most about the next


class Phase(StrEnum):
    """Where a take is *in this run* (finer than the store's status, for progress)."""

    QUEUED = "queued"  # waiting for a slot, a dependency, the pace or the budget
    SUBMITTING = "submitting"
    IN_FLIGHT = "in_flight"  # pending/processing at the gateway
    DOWNLOADING = "downloading"  # waiting for a download slot, downloading, verifying
    DONE = "done"
    SKIPPED = "skipped"  # done before this run
    FAILED = "failed"
    HELD = "held"
    NOT_STARTED = "not_started"  # not submitted: the run stopped submitting
    LEFT = "left"  # still at the gateway when the run ended: the next run collects it


# The event a move into each phase is told as (``run --progress jsonl``).
PHASE_EVENTS = {Phase.QUEUED: "take_queued", Phase.SUBMITTING: "take_submitting",
                Phase.IN_FLIGHT: "take_submitted", Phase.DOWNLOADING: "take_downloading",
                Phase.DONE: "take_done", Phase.FAILED: "take_failed", Phase.HELD: "take_held",
                Phase.NOT_STARTED: "take_not_started", Phase.LEFT: "take_left"}

TERMINAL = frozenset({Phase.DONE, Phase.SKIPPED, Phase.FAILED, Phase.HELD, Phase.NOT_STARTED,
                      Phase.LEFT})


class PhaseBook(dict[str, "Phase"]):
    """Each take's phase, with a running count per phase.

    The observer gets progress snapshots as the run moves, a few per take; counting phases by
    walking every take made a 20,000-take run quadratic (minutes of CPU). Item assignment keeps
    :attr:`counts` exact; nothing else in the run removes or bulk-updates. ``counts`` is a
    plain dict holding every phase (zero included), so reading one is a dict lookup: a
    ``Counter`` answers a missing phase through a Python-level ``__missing__``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[Phase, int] = dict.fromkeys(Phase, 0)

    def __setitem__(self, key: str, phase: Phase) -> None:
        old = self.get(key)
        if old is not None:
            self.counts[old] -= 1
        self.counts[phase] += 1
        super().__setitem__(key, phase)

    def count(self, *phases: Phase) -> int:
        """Takes in any of ``phases`` now."""
        counts = self.counts
        if len(phases) == 1:
            return counts[phases[0]]
        return sum([counts[phase] for phase in phases])


class Durations(deque[float]):
    """The recent task times, with a :attr:`version` that changes on every append.

    A snapshot hands the observer a tuple of up to 500 of them; copying it for every snapshot
    was most of a snapshot's cost, so the engine copies again only when the version moved.
    The run only appends (``extend`` moves the version too; nothing removes).
    """

    def __init__(self, iterable: Iterable[float] = (),
                 maxlen: int | None = RECENT_DURATIONS) -> None:
        super().__init__(iterable, maxlen)  # deque's own signature: copy() calls it so
        self.version = 0

    def append(self, value: float, /) -> None:
        self.version += 1
        super().append(value)

    def extend(self, values: Iterable[float], /) -> None:
        self.version += 1
        super().extend(values)


class StopReason(StrEnum):
    """Why a run stopped submitting new takes."""

    BUDGET = "budget"
    QUOTA = "quota"
    AUTH = "auth"
    UNREACHABLE = "unreachable"  # the gateway never answered in this run (firstcontact.py)
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the engine behaves; the command line fills it from flags and the manifest.

    ``retries``: task-level resubmissions of a take whose task failed transiently (``--retries``);
    ``ambiguous``: "resubmit" (once) or "hold" for a creation whose answer was lost;
    ``download_attempts``: downloads of one result (broken, truncated) before the take fails
    for this run (the link stays in the store: the next run downloads it);
    ``poll_error_limit``: consecutive failed status queries before a task is left for the next
    run (never resubmitted: it is paid), ``malformed_limit`` the same for answers that cannot be
    read; ``task_timeout``: how long a task may stay pending or
    processing before this run stops waiting for it (it too is left for the next run), so that
    a stuck gateway cannot hold a run forever. None waits without limit. ``window``: takes
    with a coroutine at once (None: :func:`runner.scheduler.window.window_size`, enough to
    keep every in-flight slot and download slot busy).
    """

    concurrency: int = 4
    submit_rate: float = 2.0
    downloads: int = 4
    max_credits: float | None = None
    retries: int = 2
    ambiguous: str = "resubmit"
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    polling: PollPolicy = field(default_factory=PollPolicy)
    rate_limit_attempts: int = 100
    download_attempts: int = 6
    link_refreshes: int = 5
    poll_error_limit: int = 30
    malformed_limit: int = 5
    task_timeout: float | None = 6 * 3600.0
    link_lifetime: float | None = LINK_LIFETIME  # None: the provider documents none
    # --retry-failed: a paid take found to need a new creation gets it in this run.
    retry_failed: bool = False
    window: int | None = None


@dataclass(slots=True)
class Outcome:
    """A take's final word in this run, for the summary (none is kept for a rendered take)."""

    phase: Phase
    kind: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass
class RunContext:
    """Everything the steps share. Mutable on purpose: it *is* the run's live state."""

    manifest: Manifest
    store: Store
    gateway: Gateway
    settings: EngineSettings
    limiter: AimdLimiter
    bucket: TokenBucket
    downloads: DownloadSlots
    budget: BudgetGuard
    uploads: UploadCache
    notify: Callable[[], None]
    clock: Callable[[], float] = time.time
    phases: PhaseBook = field(default_factory=PhaseBook)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # takes that did not render
    gateway_progress: dict[str, TakeProgress] = field(default_factory=dict)
    durations: Durations = field(default_factory=Durations)
    # How this gateway's task times relate to their hints, learnt from this run's looks:
    # it aims each task's first look (calibration.py).
    calibration: Calibration = field(default_factory=Calibration)
    ambiguous_seen: int = 0
    unreached_failures: int = 0  # connections the never-reached gateway refused, run-wide
    # Takes sent again because the gateway no longer knew their task: the lost task may
    # have been billed too, so the summary names them.
    resubmitted_unknown: list[str] = field(default_factory=list)
    downloaded: int = 0
    restored: int = 0  # takes put back from their kept render (runner.state.kept): no credits
    # Takes done in this run at another size than expected: warning text -> how many.
    size_warnings: dict[str, int] = field(default_factory=dict)
    stop_reason: StopReason | None = None
    stop_message: str | None = None
    stop_submitting: asyncio.Event = field(default_factory=asyncio.Event)
    # Called when the whole run must stop at once (401): cancels the workers.
    halt: Callable[[], None] = lambda: None
    # Takes whose creation request is on the wire: a first Ctrl-C lets them finish.
    critical: set[str] = field(default_factory=set)
    output_rules: OutputExpectations | None = None  # see expectations
    # Told every move of a take as it happens (None: nobody listens, nothing is built).
    events: EventSink | None = None
    # Several accounts, or a team's runner: seats per account and each task's own client
    # (None: one account, ``gateway``, bounded by ``limiter`` alone).
    crew: Crew | None = None

    def client_for(self, key: str) -> Gateway:
        """The client whose key created (or creates) the take ``key``'s task."""
        if self.crew is None:
            return self.gateway
        return self.crew.client(self.crew.account_of(key, self.store))

    def event(self, name: str, key: str, **details: Any) -> None:
        """Tell the event sink (if any) that ``name`` happened to the take ``key``.

        A sink that fails is not told again, and the run goes on: a take in the middle of
        its steps must never fail because a script stopped reading (its task is paid).
        """
        if self.events is None:
            return
        try:
            self.events(TakeEvent(name, key, {k: v for k, v in details.items()
                                              if v is not None}))
        except Exception as exc:
            self.events = None
            log.warning("event_sink_failed", error=str(exc))

    def set_phase(self, take: Take, phase: Phase, **details: Any) -> None:
        """Move ``take`` to ``phase`` in this run's bookkeeping and tell the observer (and
        the event sink, with ``details``, when the phase changed)."""
        old = self.phases.get(take.key)
        self.phases[take.key] = phase
        if phase is not Phase.IN_FLIGHT:
            self.gateway_progress.pop(take.key, None)
        if old is not phase:
            self.event(PHASE_EVENTS[phase], take.key, **details)
        self.notify()

    def at_gateway(self, take: Take, task_id: str | None, *, status: str = "pending",
                   progress: int = 0, started_at: float | None = None,
                   hint: float | None = None, **details: Any) -> None:
        """``take``'s task is at the gateway: in flight, with its row in the panel at once.

        The row is made with the phase, not at the first status answer: a panel counting
        "2 in flight" above a table of one row (the other not polled yet) told less than
        the truth. A row already there for the same task keeps what its polls saw.
        """
        row = self.gateway_progress.get(take.key)
        if row is None or row.task_id != task_id:
            self.gateway_progress[take.key] = TakeProgress(
                take.key, status, progress, task_id, started_at=started_at, hint=hint)
        self.set_phase(take, Phase.IN_FLIGHT, task_id=task_id, estimated_time=hint, **details)

    def finish(self, take: Take, phase: Phase, *, kind: str | None = None,
               code: str | None = None, message: str | None = None, **details: Any) -> None:
        """Record the take's outcome for this run (the store already has its status); the
        message is redacted and bounded, as the summary shows it; ``details`` go to the event
        sink only."""
        shown = None if message is None else bounded(message)
        if phase is Phase.DONE:
            self.outcomes.pop(take.key, None)  # says nothing the phase does not: not kept
        else:
            self.outcomes[take.key] = Outcome(phase, kind, code, shown)
        self.set_phase(take, phase, kind=kind, code=code, message=shown, **details)

    def stop(self, reason: StopReason, message: str) -> None:
        """No more creations from now on; the first reason wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_message = message = bounded(message)
            # Info, not warning: the command prints the reason itself (progress line and
            # summary); a console warning too said the same thing twice. run.log keeps it.
            log.info("submissions_stopped", reason=reason.value, message=message)
        self.stop_submitting.set()
        self.notify()

    @cached_property
    def expectations(self) -> OutputExpectations:
        """How this run checks outputs: the rule the command chose (the manifest's ``verify``
        and the profile of this gateway), else the manifest's rule on nominal sizes."""
        return self.output_rules or OutputExpectations(self.manifest.verify)

    @cached_property
    def files(self) -> outputs.RunFiles:
        """The run's output paths, each take's built and checked once (a ``RunFiles``)."""
        return outputs.RunFiles(self.manifest.output_dir)

    @cached_property
    def intents(self) -> IntentLog:
        """The run's journal of intents beside the store (:mod:`runner.state.intents`)."""
        return IntentLog(self.manifest.output_dir)

    def output_path(self, take: Take) -> Path:
        """Where the take's video goes: ``<output_dir>/<shot-id>/take-<n>.mp4``."""
        return self.files.of(take).video
