"""The values the state store hands out: statuses, take records, plans, uploads, events.

They are frozen so that a record read from the store is a snapshot: the scheduler acts on it,
then asks the store to move the take on; it never edits a record and hopes it gets saved.
Times are epoch seconds (``time.time()``), ``None`` when the moment has not happened yet.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from runner.core.money import CREDITS, Figure, take_figure


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
    # Paid, but its result could not be saved this run (a link refused, a file that failed its
    # check): the next run collects it from the same task, never creating a new one, for as
    # long as the provider can serve it (runner.state.decide.decide).
    COLLECTABLE = "collectable"
    MISSING = "missing"  # done, but its file is gone and can be neither restored nor fetched


class TakeAction(StrEnum):
    """What a plan tells the scheduler to do with a take on this run (a ``StrEnum``: the
    value is what ``plan``, ``run`` and ``status`` print and what JSON holds)."""

    SKIP = "skip"  # done, its file as verified: nothing to do
    POLL = "poll"  # its task is at the provider: follow it to the end
    DOWNLOAD = "download"  # its result is ready (or to be fetched again): collect it
    SUBMIT = "submit"  # create a task (new, changed, or an ambiguous creation resubmitted)
    RETRY = "retry"  # failed before and tried again: a new task
    HOLD = "hold"  # an ambiguous creation kept aside
    FAILED = "failed"  # failed before and left so by this run
    RESTORE = "restore"  # a kept render of its fingerprint put back: no credits


class AttemptOutcome(StrEnum):
    """How one creation attempt ended, in the ``attempts`` table (the budget's ledger)."""

    SUBMITTING = "submitting"  # its intent committed; the request may be on the wire
    SUBMITTED = "submitted"  # a task id came back: billed (``credits_reserved``)
    AMBIGUOUS = "ambiguous"  # sent, its answer lost: it may have been billed
    REFUSED = "refused"  # the provider answered with a refusal: not billed
    NOT_SENT = "not_sent"  # certainly never reached the provider: not billed


# What a plan tells the scheduler to do with a take (the values of TakeAction).
ACTIONS = tuple(action.value for action in TakeAction)
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
    "source changed",  # a frame it starts from comes from a source rendered (or picked) anew
    "not collected yet",  # paid, its result not saved yet: collected from the same task
    "link lifetime over",  # paid, but the provider no longer serves its result
    "kept render",  # its fingerprint matches a render kept on disk: restored at no cost
    "file missing",  # done, but its file is gone
    "file changed",  # done, but its file is not the one verified
    "missing",  # done once; its file is lost and nothing can bring it back for free
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
    payload_json: str | None = None  # the redacted wire payload of the last attempt, as JSON
    created_at: float | None = None
    video_json: str | None = None  # what the output is (runner.media.observed.video_facts), as JSON
    unit: str | None = None  # of the credits figures (runner.core.money); None: not submitted yet
    account: str | None = None  # the provider account whose key created the task (api.accounts)

    @property
    def video(self) -> dict[str, Any] | None:
        """The done output's observed facts: width, height, fps, codec, audio_codec, ...

        Recorded, not enforced (issue 14): the gateway documents no pixel size, so the size a
        take was rendered at is shown beside the size shotrun expected, never a reason to pay
        again. None for a take not verified yet (or verified before schema 3).
        """
        value = _loads(self.video_json)
        return value if isinstance(value, dict) else None

    @property
    def payload(self) -> dict[str, Any] | None:
        """The redacted wire payload of the last attempt (parsed on demand: sync stays fast)."""
        value = _loads(self.payload_json)
        return value if isinstance(value, dict) else None

    @property
    def credits(self) -> float | None:
        """What this take costs as best known: the gateway's figure, else the estimate."""
        if self.credits_reserved is not None:
            return self.credits_reserved
        return self.credits_estimated

    def figure(self, default_unit: str = CREDITS) -> Figure:
        """The take's one money figure (:func:`runner.core.money.take_figure`); ``default_unit``
        for a take not submitted yet (its provider's, from the manifest)."""
        return take_figure(self.credits_reserved, self.credits_estimated,
                           self.unit or default_unit)


class TakeOutput(NamedTuple):
    """The narrow view of a :class:`TakeRecord`: which take, which version, and its output.

    What choosing a shot's take (:mod:`runner.state.continuity`), holding a reviewer's note
    (:mod:`runner.state.notes`) and checking a done take's file on disk (:mod:`runner.state.kept`)
    read, and all that ``status`` reads of 20,000 takes besides their trace records: building
    full records there cost more than everything else it does. Readers take ``TakeRecord |
    TakeOutput``; each field means what :class:`TakeRecord`'s of that name means (``credits``
    is its property: charged, else estimated).
    """

    key: str
    shot_id: str
    take: int
    status: TakeStatus
    fingerprint: str
    output_path: str | None
    size: int | None
    sha256: str | None
    task_id: str | None
    completed_at: float | None
    downloaded_at: float | None
    link_expires_at: float | None
    credits: float | None


# The columns of ``takes`` a :class:`TakeOutput` is made of, in its order.
OUTPUT_SELECT = ("key, shot_id, take, status, fingerprint, output_path, size, sha256, task_id,"
                 " completed_at, downloaded_at, link_expires_at,"
                 " COALESCE(credits_reserved, credits_estimated)")


def output_from_row(row: Sequence[Any]) -> TakeOutput:
    """A :class:`TakeOutput` from a row selected with :data:`OUTPUT_SELECT` (and maybe more
    columns after them)."""
    return TakeOutput(row[0], row[1], row[2], STATUSES[row[3]], *row[4:13])


@dataclass(frozen=True, slots=True)
class TakePlan:
    """What to do with one take on this run, and why.

    ``previous`` is the record moved to history when the fingerprint changed: its output
    files still sit at the take's path until :func:`runner.state.outputs.archive_previous` moves
    them.
    """

    key: str
    record: TakeRecord
    action: TakeAction
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


# The columns of ``takes`` in the order of TakeRecord's fields: rows become records by position.
RECORD_COLUMNS = (
    "key", "shot_id", "take", "status", "failure_kind", "task_id", "attempts", "fingerprint",
    "credits_estimated", "credits_reserved", "output_path", "size", "sha256",
    "last_error_code", "last_error", "polls", "submitted_at", "completed_at", "downloaded_at",
    "link_expires_at", "result_url", "gateway_status", "progress", "tags", "updated_at",
    "reason", "submitting_at", "estimated_time", "verified_duration", "ambiguous_attempts",
    "payload", "created_at", "video", "unit", "account",
)
RECORD_SELECT = ", ".join(RECORD_COLUMNS)
_STATUS_INDEX = RECORD_COLUMNS.index("status")
_TAGS_INDEX = RECORD_COLUMNS.index("tags")
STATUSES = {status.value: status for status in TakeStatus}  # stored text -> status
_tags_cache: dict[str, tuple[str, ...]] = {}


def parse_tags(text: str) -> tuple[str, ...]:
    """Parsed tags, memoised: a manifest has few distinct tag lists and many takes."""
    tags = _tags_cache.get(text)
    if tags is None:
        tags = tuple(json.loads(text) or ())
        if len(_tags_cache) < 4096:
            _tags_cache[text] = tags
    return tags


def record_from_row(row: Sequence[Any]) -> TakeRecord:
    """A :class:`TakeRecord` from a row selected with :data:`RECORD_SELECT`.

    The record's slots are filled directly: a frozen dataclass's ``__init__`` sets each of
    its 32 fields through ``object.__setattr__``, which cost more than the SELECT (a run
    reads four records per take, ``status`` 20,000 at once). Nothing is lost: the record has
    no ``__post_init__``, and every field comes from the row.
    """
    values = list(row)
    values[_STATUS_INDEX] = STATUSES[values[_STATUS_INDEX]]
    values[_TAGS_INDEX] = parse_tags(values[_TAGS_INDEX])
    record = _new_record(TakeRecord)
    for setter, value in zip(_SETTERS, values, strict=True):
        setter(record, value)
    return record


_new_record = object.__new__
# Each field's slot descriptor, in the order of RECORD_COLUMNS (tests check that order).
_SETTERS = tuple(
    getattr(TakeRecord, field.name).__set__ for field in dataclasses.fields(TakeRecord)
)


def event_from_row(row: Any) -> Event:
    """An :class:`Event` from a row of ``events``."""
    return Event(
        id=row["id"], at=row["at"], key=row["key"], event=row["event"],
        details=_loads(row["details"]) or {},
    )
