"""Deciding, per take, what a run does with it and why: pure functions, no I/O.

Users complained about tools that re-run work without saying why, and about over-eager
re-runs (docs/reliability.md). So the decision is spelt out in one place, and the reason for a new
render is derived by *comparing* the stored fingerprint payload with the new one rather than
guessed: the user reads "prompt changed" and knows it was their edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.state.records import FailureKind, TakeAction, TakeRecord, TakeStatus
from runner.wire.payload import PROVIDER_FIELD

PROMPT_FIELDS = frozenset({"prompt", "multi_prompt"})
MEDIA_FIELDS = frozenset(
    {"start_image_url", "end_image_url", "image_urls", "elements", "start_frame", "end_frame",
     "images"}
)
_MEDIA_PREFIXES = ("sha256:", "frame:", "http://", "https://")
A = TakeAction  # decide() is a table of them


def _is_media(value: Any) -> bool:
    """True for a media stand-in (``sha256:…``, ``frame:…``, a URL) or lists/dicts of them."""
    if isinstance(value, str):
        return value.startswith(_MEDIA_PREFIXES)
    if isinstance(value, list):
        return bool(value) and all(_is_media(item) for item in value)
    if isinstance(value, dict):
        return bool(value) and all(_is_media(item) for item in value.values())
    return False


def change_reason(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """Why a take whose fingerprint changed is rendered again.

    The provider differs -> "provider changed"; prompt fields differ -> "prompt changed";
    otherwise, when every differing field is media
    -> "asset content changed"; otherwise (or when a payload is unknown) "settings changed".
    Wire renames are handled by also recognising media by value.
    """
    if old is None or new is None:
        return "settings changed"
    changed = {key for key in set(old) | set(new) if old.get(key) != new.get(key)}
    if PROVIDER_FIELD in changed:  # another provider renders it
        return "provider changed"
    if changed & PROMPT_FIELDS:
        return "prompt changed"
    if changed and all(
        key in MEDIA_FIELDS or _is_media(old.get(key)) or _is_media(new.get(key))
        for key in changed
    ):
        return "asset content changed"
    return "settings changed"


# Failures that are not the take's own fault: the next run simply tries again.
_RETRYABLE_KINDS = frozenset(
    {FailureKind.TRANSIENT, FailureKind.BUDGET, FailureKind.AUTH, FailureKind.QUOTA,
     FailureKind.DEPENDENCY}
)


# What an earlier shotrun failed for good (kind "permanent") although the task still held the
# result: taken back as collectable too, so that upgrading never leaves such a take to a
# paid --retry-failed.
_REFUSED_CODES = frozenset({"download_refused", "verify_failed"})


def refused_result(record: TakeRecord) -> bool:
    """True for a failed take whose paid result shotrun refused as offered: a link that is
    not http(s), a redirect loop, a file over ``--max-result-size``, bytes that failed their
    check (kind ``collectable``, or ``permanent`` with those codes before issue 21)."""
    if record.status is not TakeStatus.FAILED or record.task_id is None:
        return False
    return record.failure_kind == FailureKind.COLLECTABLE or (
        record.failure_kind == FailureKind.PERMANENT
        and record.last_error_code in _REFUSED_CODES)


#: ``last_error_code`` of a done take whose file went missing or changed, being fetched again
#: from its finished task (runner.state.ondisk.mark_output_lost, runner.state.rebuild; the
#: rebuild also marks so a collectable take's finished task, from its intent).
OUTPUT_LOST = "output_lost"


def refetching(record: TakeRecord) -> bool:
    """True for a take done once whose file is lost, fetched again from its finished task:
    a provider that no longer serves it leaves it needing a new creation, which only
    ``--retry-failed`` makes (the task was paid and had finished: never resubmitted unasked)."""
    return record.last_error_code == OUTPUT_LOST and record.task_id is not None


def collectable(record: TakeRecord) -> bool:
    """True for a failed take whose paid task may still hand over its result.

    A task id is known and the failure was on shotrun's side of the link: a download that
    broke, or a result refused as offered (:func:`refused_result`). Such a take is collected
    again from the same task by the next run, never created anew.
    """
    if refused_result(record):
        return True
    return (record.status is TakeStatus.FAILED and record.task_id is not None
            and record.result_url is not None
            and record.failure_kind != FailureKind.PERMANENT)


def link_lifetime_over(record: TakeRecord, now: float | None) -> bool:
    """True once the provider's documented result lifetime has passed for ``record``'s task
    (``link_expires_at``: the gateway's 24 h after the task finished; None: undocumented, so
    only the provider's own answer ends it). ``now`` None: not judged (False)."""
    return lifetime_over(record.link_expires_at, now)


def lifetime_over(expires_at: float | None, now: float | None) -> bool:
    """The one rule of a result's lifetime: over at ``expires_at`` (None: the provider
    documents none, so only its own answer ends it; ``now`` None: not judged)."""
    return now is not None and expires_at is not None and now >= expires_at

def decide(
    record: TakeRecord,
    *,
    retry_failed: bool = False,
    ambiguous: str = "resubmit",
    max_ambiguous_resubmits: int = 1,
    now: float | None = None,
) -> tuple[TakeAction, str]:
    """(action, reason) for a take whose fingerprint did not change.

    An ambiguous creation is resubmitted at most ``max_ambiguous_resubmits`` times (the
    gateway has no idempotency key: each resubmission may pay twice), then held.

    A :func:`collectable` take is downloaded again (``--retry-failed`` too: it collects, it
    never creates) until its result's documented lifetime is over at ``now``; only then does
    it need a new creation, which ``--retry-failed`` makes.
    """
    status = record.status
    if status is TakeStatus.DONE:
        return A.SKIP, "done"
    if status is TakeStatus.SUBMITTED:
        return A.POLL, "in flight"
    if status in (TakeStatus.COMPLETED, TakeStatus.DOWNLOADING):
        return A.DOWNLOAD, "in flight"
    if status in (TakeStatus.AMBIGUOUS, TakeStatus.HELD, TakeStatus.SUBMITTING):
        resubmit = ambiguous == "resubmit" and (
            record.ambiguous_attempts <= max_ambiguous_resubmits or retry_failed
        )
        return (A.SUBMIT if resubmit else A.HOLD), "ambiguous submission"
    if status is TakeStatus.FAILED:
        if record.failure_kind == FailureKind.MISSING:
            # Done once, its file since lost for good: a new render is paid, so only on demand.
            return (A.RETRY if retry_failed else A.FAILED), "missing"
        if collectable(record):
            if not link_lifetime_over(record, now):
                return A.DOWNLOAD, "not collected yet"
            return (A.RETRY if retry_failed else A.FAILED), "link lifetime over"
        if retry_failed or record.failure_kind in _RETRYABLE_KINDS:
            return A.RETRY, "failed before"
        return A.FAILED, "failed before"
    return A.SUBMIT, record.reason or "new"


def preview(
    record: TakeRecord | None,
    stored: tuple[str, Mapping[str, Any] | None] | None,
    fingerprint: str,
    payload: Mapping[str, Any],
    *,
    retry_failed: bool = False,
    ambiguous: str = "resubmit",
    now: float | None = None,
) -> tuple[TakeAction, str]:
    """(action, reason) a run *would* give a take, without writing anything (``plan``).

    Mirrors ``sync``: a take the store has never seen is new; one whose fingerprint changed
    is rendered again for the reason :func:`change_reason` finds; otherwise :func:`decide`.
    """
    if record is None or stored is None:
        return A.SUBMIT, "new"
    old_fingerprint, old_payload = stored
    if old_fingerprint != fingerprint:
        if record.status is TakeStatus.NEW and record.attempts == 0:
            return A.SUBMIT, record.reason or "new"
        return A.SUBMIT, change_reason(old_payload, payload)
    return decide(record, retry_failed=retry_failed, ambiguous=ambiguous, now=now)
