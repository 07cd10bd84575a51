"""The values the state store hands out: statuses, take records, plans, uploads, events.

They are frozen so that a record read from the store is a snapshot: the scheduler acts on it,
then asks the store to move the take on; it never edits a record and hopes it gets saved.
Times are epoch seconds (``time.time()``), ``None`` when the moment has not happened yet.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class TakeStatus(StrEnum):
    """Where a take is in its life; see the diagram in :mod:`runner.state`."""

    NEW = "new"  # known, never submitted (or reset for a retry)
    SUBMITTING = "submitting"  # intent committed; the creation request may be in flight
    AMBIGUOUS = "ambiguous"  # a creation whose answer was lost: it may have been billed
    HELD = "held"  # ambiguous, and kept aside (``--ambiguous=hold`` or ambiguous twice)
    SUBMITTED = "submitted"  # task id known; pending/processing at the gateway
    COMPLETED = "completed"  # the gateway completed it; result URL known; not yet saved
    DOWNLOADING = "downloading"  # a download to the .part file is under way
    DONE = "done"  # downloaded and verified
    FAILED = "failed"  # see ``failure_kind``


class FailureKind(StrEnum):
    """Why a take failed, which decides whether a later run tries it again."""

    PERMANENT = "permanent"  # fix the request; retried only with --retry-failed
    TRANSIENT = "transient"  # retried by the next run
    BUDGET = "budget"  # not submitted: the budget would have been exceeded
    AUTH = "auth"  # the key was refused
    QUOTA = "quota"  # out of credits at the gateway
    DEPENDENCY = "dependency"  # a shot it waits for (after/from_shot) did not finish


# What a plan tells the scheduler to do with a take.
ACTIONS = ("skip", "poll", "download", "submit", "retry", "hold", "failed")
# Why: shown per take by ``plan``, ``run`` and ``status``.
REASONS = (
    "new",
    "prompt changed",
    "asset content changed",
    "settings changed",
    "failed before",
    "in flight",
    "ambiguous submission",
    "done",
)


@dataclass(frozen=True, slots=True)
class TakeRecord:
    """Everything the store knows about one take (its current fingerprint)."""

    key: str
    shot_id: str
    take: int
    status: TakeStatus
    failure_kind: str | None
    task_id: str | None
    attempts: int
    fingerprint: str
    credits_estimated: float | None
    credits_reserved: float | None
    output_path: str | None
    size: int | None
    sha256: str | None
    last_error_code: str | None
    last_error: str | None
    polls: int
    submitted_at: float | None
    completed_at: float | None
    downloaded_at: float | None
    link_expires_at: float | None
    result_url: str | None
    gateway_status: str | None
    progress: int | None
    tags: tuple[str, ...]
    updated_at: float
    # Added beyond the first API; all optional for callers.
    reason: str | None = None  # why the current fingerprint is being rendered
    submitting_at: float | None = None  # when the intent of the current attempt was committed
    estimated_time: float | None = None  # the gateway's task_info.estimated_time
    verified_duration: float | None = None
    ambiguous_attempts: int = 0  # creations of this fingerprint whose answer was lost
    payload: dict[str, Any] | None = None  # the redacted wire payload of the last attempt
    created_at: float | None = None

    @property
    def credits(self) -> float | None:
        """What this take costs as best known: the gateway's figure, else the estimate."""
        if self.credits_reserved is not None:
            return self.credits_reserved
        return self.credits_estimated


@dataclass(frozen=True, slots=True)
class TakePlan:
    """What to do with one take on this run, and why.

    ``previous`` is the record moved to history when the fingerprint changed: its output
    files still sit at the take's path until :func:`runner.outputs.archive_previous` moves them.
    """

    key: str
    record: TakeRecord
    action: str  # one of ACTIONS
    reason: str  # one of REASONS
    previous: TakeRecord | None = None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """A local file already uploaded: its URL and when that URL stops working."""

    sha256: str
    url: str
    expires_at: float | None
    size: int | None
    mime: str | None
    uploaded_at: float


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the append-only event log."""

    id: int
    at: float
    key: str | None
    event: str
    details: dict[str, Any]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def record_from_row(row: sqlite3.Row) -> TakeRecord:
    """A :class:`TakeRecord` from a row of ``takes`` (or ``take_history``)."""
    return TakeRecord(
        key=row["key"],
        shot_id=row["shot_id"],
        take=row["take"],
        status=TakeStatus(row["status"]),
        failure_kind=row["failure_kind"],
        task_id=row["task_id"],
        attempts=row["attempts"],
        fingerprint=row["fingerprint"],
        credits_estimated=row["credits_estimated"],
        credits_reserved=row["credits_reserved"],
        output_path=row["output_path"],
        size=row["size"],
        sha256=row["sha256"],
        last_error_code=row["last_error_code"],
        last_error=row["last_error"],
        polls=row["polls"],
        submitted_at=row["submitted_at"],
        completed_at=row["completed_at"],
        downloaded_at=row["downloaded_at"],
        link_expires_at=row["link_expires_at"],
        result_url=row["result_url"],
        gateway_status=row["gateway_status"],
        progress=row["progress"],
        tags=tuple(_loads(row["tags"]) or ()),
        updated_at=row["updated_at"],
        reason=row["reason"],
        submitting_at=row["submitting_at"],
        estimated_time=row["estimated_time"],
        verified_duration=row["verified_duration"],
        ambiguous_attempts=row["ambiguous_attempts"],
        payload=_loads(row["payload"]),
        created_at=row["created_at"],
    )


def event_from_row(row: sqlite3.Row) -> Event:
    """An :class:`Event` from a row of ``events``."""
    return Event(
        id=row["id"], at=row["at"], key=row["key"], event=row["event"],
        details=_loads(row["details"]) or {},
    )
