"""What the engine tells the outside world: a live snapshot while it runs, a summary at the end.

Both are frozen values, built by the engine and handed out: a display (the live progress of
``shotrun run``) reads them without ever reaching into the engine's moving parts, and cannot
change the run by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.core.model import frozen_mapping
from runner.core.money import CREDITS

#: ``run --progress``: how a run shows itself (runner.cli.progress draws each; named here, where
#: the command line can read them without importing rich).
PROGRESS_MODES = ("auto", "bar", "lines", "jsonl", "none")


@dataclass(frozen=True, slots=True)
class TakeProgress:
    """A take in flight at the gateway, as last polled."""

    key: str
    status: str  # the gateway's status: pending, processing, completed
    progress: int  # 0-100
    task_id: str | None = None
    queue_position: int | None = None  # requests ahead of it (fal.ai reports it, no percentage)
    started_at: float | None = None  # when its creation was sent (epoch seconds): its age
    hint: float | None = None  # the gateway's estimated_time for it, seconds


@dataclass(frozen=True, slots=True)
class RunProgress:
    """A snapshot of the run, sent to the observer on every state change.

    ``durations`` are the wall times (creation to completion, seconds) of the tasks completed
    most recently in this run (up to 500), for an ETA; ``in_flight`` counts tasks
    pending/processing at the gateway, and ``takes`` has a row for each of them.
    ``expected_task`` is how long a task is taken to last before any was measured or hinted
    (the poll policy's ``default_estimate``): the ETA exists from the first snapshot.
    """

    total: int
    done: int
    failed: int
    in_flight: int
    queued: int
    downloading: int
    submitting: int
    ambiguous: int
    held: int
    credits_reserved: float
    max_credits: float | None
    started_at: float
    concurrency_limit: int
    takes: tuple[TakeProgress, ...] = ()
    durations: tuple[float, ...] = ()
    stopping: str | None = None  # why no more takes are submitted, once that is so
    expected_task: float | None = None
    unit: str = CREDITS  # of credits_reserved and max_credits (runner.core.money)
    # A team's runner: takes other runners hold now (not counted in ``queued``).
    elsewhere: int = 0


Observer = Callable[[RunProgress], None]


@dataclass(frozen=True, slots=True)
class TakeEvent:
    """One thing that happened to a take, when it happened (``run --progress jsonl``).

    Snapshots are coalesced per loop turn and only count; a script following takes needs
    each move, in order, with what it carries (a task id, a status, a failure's reason).
    ``event`` is one of :data:`TAKE_EVENTS`; ``details`` holds plain JSON values.
    """

    event: str
    take: str
    details: Mapping[str, Any] = field(default_factory=frozen_mapping)


# Every event a take can have, in the order of its life; documented in docs (panel notes).
TAKE_EVENTS = ("take_queued", "take_submitting", "take_submitted", "take_status",
               "take_downloading", "take_downloaded", "take_verified", "take_rejected",
               "take_done",
               "take_failed", "take_held", "take_not_started", "take_left")

EventSink = Callable[[TakeEvent], None]


@dataclass(frozen=True, slots=True)
class TakeFailure:
    """One failed take in the summary."""

    key: str
    kind: str  # runner.state FailureKind value
    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Cost:
    """Takes a suggested command would create anew, and about what that costs."""

    keys: tuple[str, ...] = ()
    credits: float = 0.0  # the estimates of the priced ones
    unpriced: int = 0  # takes without a rate (budget.rates)

    def to_json(self) -> dict[str, Any]:
        return {"takes": list(self.keys), "new_tasks": len(self.keys),
                "credits": round(self.credits, 4), "unpriced_takes": self.unpriced}


@dataclass(frozen=True, slots=True)
class NextRun:
    """What the next run does with the takes this one did not finish, and what it spends.

    The summary's advice is read from here, so that it never suggests a command without
    saying whether it spends (issue 21): a paid task still collectable is collected by a plain
    run for nothing; only what needs a new creation is priced.
    """

    collects: tuple[str, ...] = ()  # failed, but their paid task is collected: spends nothing
    # What ``collects`` would cost created anew: the built-in emulator's tasks end with it.
    collects_anew: Cost = field(default_factory=Cost)
    creates: Cost = field(default_factory=Cost)  # failed: a plain `run` creates them anew
    retry_creates: Cost = field(default_factory=Cost)  # only `run --retry-failed` does
    held: Cost = field(default_factory=Cost)  # held ambiguous: `--retry-failed` resubmits
    resubmits: Cost = field(default_factory=Cost)  # left at the built-in emulator

    def to_json(self) -> dict[str, Any]:
        return {"collects": list(self.collects),
                "emulator_collects_resubmit": self.collects_anew.to_json(),
                "creates": self.creates.to_json(),
                "retry_failed_creates": self.retry_creates.to_json(),
                "held_resubmits": self.held.to_json(),
                "emulator_resubmits": self.resubmits.to_json()}


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The end of a run: what is done, what failed and why, what it cost, why it stopped.

    ``not_started`` are takes this run did not submit (stopped by budget, quota, auth or an
    interruption); ``stopped_reason`` says which, None when the run went to the end.
    """

    total: int
    done: int
    skipped: int  # already done before this run
    failed: tuple[TakeFailure, ...]
    ambiguous: int  # ambiguous submissions met by this run
    held: tuple[str, ...]
    not_started: tuple[str, ...]
    in_flight: tuple[str, ...]  # left at the gateway (interrupted or stopped): next run collects
    credits_run: float  # reserved by this run
    credits_total: float  # reserved by the manifest over its life
    max_credits: float | None
    wall_time: float
    stopped_reason: str | None = None
    stopped_message: str | None = None
    downloaded: int = 0
    restored: int = 0  # done from a kept render of the same fingerprint, at no cost
    # Why takes were left at the gateway, when it is not simply the stop (a stuck task,
    # status queries that keep failing): key -> message.
    left_reasons: Mapping[str, str] = field(default_factory=frozen_mapping)
    # Sent again because the gateway no longer knew their task (the lost one may be billed).
    resubmitted_unknown: tuple[str, ...] = ()
    # Done at another size than expected (verify.size warn): (warning, takes), each once.
    size_warnings: tuple[tuple[str, int], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=frozen_mapping)
    next_run: NextRun = field(default_factory=NextRun)
    unit: str = CREDITS  # of the credits figures (runner.core.money)
    # A team's runner: takes other runners held when it ended (not in ``total``: theirs).
    with_others: int = 0

    @property
    def all_done(self) -> bool:
        """True when every take of the run is done (exit 0)."""
        return self.done + self.skipped == self.total

    def failures_by_reason(self) -> dict[str, list[str]]:
        """Failed take keys grouped by their message (one line per distinct reason)."""
        groups: dict[str, list[str]] = {}
        for failure in self.failed:
            label = f"{failure.code}: {failure.message}" if failure.code else failure.message
            groups.setdefault(label, []).append(failure.key)
        return groups

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON values (``shotrun run --json``)."""
        return {
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "downloaded": self.downloaded,
            "restored": self.restored,
            "failed": [
                {"key": f.key, "kind": f.kind, "code": f.code, "message": f.message}
                for f in self.failed
            ],
            "ambiguous": self.ambiguous,
            "held": list(self.held),
            "not_started": list(self.not_started),
            "in_flight": list(self.in_flight),
            "left_reasons": dict(self.left_reasons),
            "resubmitted_unknown": list(self.resubmitted_unknown),
            "size_warnings": [{"warning": text, "takes": count}
                              for text, count in self.size_warnings],
            "credits": {"run": round(self.credits_run, 4),
                        "total": round(self.credits_total, 4),
                        "max": self.max_credits, "unit": self.unit},
            "wall_time": round(self.wall_time, 3),
            "stopped_reason": self.stopped_reason,
            "stopped_message": self.stopped_message,
            "all_done": self.all_done,
            "next_run": self.next_run.to_json(),
            "with_other_runners": self.with_others,
        }
