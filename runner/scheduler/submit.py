"""One take's creation: media to URLs, pace, budget, intent committed, request, task id committed.

The order is the whole point (docs/reliability.md, "lessons"): the intent is committed to the store
*before* the request leaves, and the task id the moment it arrives, with no ``await`` in
between the answer and the commit. A request that certainly did not create a task (refused
connection, 429, 5xx, 402, 401) is rolled back to ``new`` or failed with its reason; one whose
answer was lost is *ambiguous*: counted, never retried in a loop, resubmitted at most once.

What an error means is :mod:`runner.scheduler.policy`'s to say (docs/gateway-api.md,
"Errors"); this module acts on it, once for uploads (:func:`_upload_failed`) and once for
the creation (:func:`_creation_failed`):
- 429: the in-flight limit halves, wait (Retry-After as a floor), try again;
- 5xx, resets before sending: backoff with jitter, up to ``backoff.max_attempts``;
- 400/403/413, request-side codes: the take fails with the gateway's message;
- 401: the whole run stops at once; 402: no more submissions, in-flight work is collected.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from runner.core.errors import (
    ConnectionFailed,
    GatewayError,
    GatewayUnreachable,
)
from runner.core.model import Media, Take
from runner.core.redact import redact, redact_value
from runner.scheduler import lost
from runner.scheduler.firstcontact import retry_or_stop
from runner.scheduler.policy import Decision, Reaction, Stage, classify
from runner.scheduler.run_context import Phase, RunContext, StopReason
from runner.state.continuity import frame_sources
from runner.state.intents import Intent
from runner.state.records import TakeStatus
from runner.state.transitions import BudgetRefused, ClaimLost
from runner.wire.common import CLIENT_TASK_ID
from runner.wire.payload import build_payload, estimate_credits
from runner.wire.protocol import TaskState

log = structlog.get_logger()


def auth_message(exc: GatewayError, label: str = "the gateway") -> str:
    """The one line a user sees when the key is refused (never the key itself); ``label``
    names who refused it (:attr:`Gateway.label`)."""
    what = exc.message if "API key" in exc.message else \
        f"{label} refused the API key (HTTP 401: {exc.message})"
    return f"{what}; check the key and run again (it collects paid tasks without spending)"


def quota_message(exc: GatewayError, label: str = "the gateway") -> str:
    """The one line a user sees when the account is out of credits."""
    return (f"{label} says the account is out of credits ({exc.code or 'HTTP 402'}: "
            f"{exc.message}); no more takes are submitted, tasks in flight are still collected")


async def build_request(ctx: RunContext, take: Take) -> dict[str, Any]:
    """The creation body of ``take`` with every local file uploaded (once per content)."""
    urls: dict[Media, str] = {}
    for media in take.request.media():
        if media not in urls:
            urls[media] = await ctx.uploads.resolve(media)
    return build_payload(take.request, lambda media: urls[media], ctx.manifest.api.wire)


async def _prepare(ctx: RunContext, take: Take) -> dict[str, Any] | None:
    """Upload what the take needs, retrying transient errors; None when the take failed."""
    attempt = 0
    while True:
        try:
            return await build_request(ctx, take)
        except Exception as exc:
            decision = classify(exc, Stage.UPLOAD)
            if decision.reaction is Reaction.PROPAGATE:
                raise
            wait = _upload_failed(ctx, take, exc, decision, attempt)
            if wait is None:
                return None
            if decision.reaction is Reaction.BACK_OFF:
                attempt += 1
            await asyncio.sleep(wait)


def _upload_failed(ctx: RunContext, take: Take, exc: Exception, decision: Decision,
                   attempt: int) -> float | None:
    """Act on an upload's failure: the delay before trying again, or None (take failed)."""
    match decision.reaction:
        case Reaction.RETRY_NOW if isinstance(exc, GatewayUnreachable):
            return _unreached(ctx, take, exc)  # a quick retry, or the run stops
        case Reaction.STOP_RUN if isinstance(exc, GatewayError):
            _auth_stop(ctx, take, exc)
            return None
        case Reaction.BACK_OFF if attempt < ctx.settings.backoff.max_attempts:
            delay = ctx.settings.backoff.delay(attempt, decision.retry_after)
            log.info("upload_retry", error=str(exc), delay=round(delay, 3))
            return delay
    message = exc.message if isinstance(exc, GatewayError) else redact(str(exc))
    if decision.reaction is Reaction.BACK_OFF:  # give_up: FAIL_TAKE
        message = f"uploading its media failed: {message}"
    elif isinstance(exc, GatewayError):
        message = f"the file service refused its media: {message}"
    _fail(ctx, take, decision.kind or "permanent", decision.code_of(exc), message)
    return None


def _fail(ctx: RunContext, take: Take, kind: str, code: str | None, message: str) -> None:
    ctx.store.mark_failed(take.key, kind, code, message)
    log.warning("take_failed", kind=kind, code=code, message=message)
    ctx.finish(take, Phase.FAILED, kind=kind, code=code, message=message)


def _auth_stop(ctx: RunContext, take: Take, exc: GatewayError) -> None:
    message = auth_message(exc, ctx.gateway.label)
    # In the store it is failed (kind "auth": the next run tries again); in the summary it
    # is one of the takes the stop left unsubmitted, not a failure of its own.
    ctx.store.mark_failed(take.key, "auth", exc.code or "authentication_error", message)
    ctx.finish(take, Phase.NOT_STARTED, kind="auth", code=exc.code, message=message)
    ctx.stop(StopReason.AUTH, message)
    ctx.halt()


def _not_started(ctx: RunContext, take: Take) -> bool:
    ctx.finish(take, Phase.NOT_STARTED, message=ctx.stop_message)
    return False


@dataclass
class _Tries:
    """A take's creation tries this run, per limit: 429s and other certain non-creations."""

    transient: int = 0
    limited: int = 0


# What one creation attempt left the submission loop to do: IN_FLIGHT (the task id is
# committed; the slot is now the task's), AGAIN (at once), GIVE_UP (the take is finished for
# this run), or a delay in seconds before trying again.
IN_FLIGHT, AGAIN, GIVE_UP = "in flight", "again", "give up"
Next = str | float


async def submit(ctx: RunContext, take: Take) -> bool:
    """Create a task for ``take``; True when its task id is committed (it is in flight).

    On True the take holds an in-flight slot of ``ctx.limiter``, which the poll step gives
    back when the task leaves the gateway's queue.
    """
    rates: Mapping[str, float] = ctx.manifest.budget.rates_for(ctx.budget.unit)
    estimate = estimate_credits(take.request, rates)
    tries = _Tries()
    while True:
        if ctx.stop_submitting.is_set():
            return _not_started(ctx, take)
        ctx.set_phase(take, Phase.QUEUED)
        await ctx.limiter.acquire()
        step: Next = GIVE_UP
        try:
            if ctx.crew is None or await ctx.crew.take_seat(
                    take.key, ctx.stop_submitting.is_set) is not None:
                step = await _attempt(ctx, take, estimate, tries)
            else:  # stopped while waiting for a seat of an account
                _not_started(ctx, take)
        finally:
            if step != IN_FLIGHT:
                if ctx.crew is not None:
                    ctx.crew.release_seat(take.key)
                ctx.limiter.release()
        if not isinstance(step, str):
            await asyncio.sleep(step)
        elif step != AGAIN:
            return step == IN_FLIGHT


async def _attempt(ctx: RunContext, take: Take, estimate: float | None,
                   tries: _Tries) -> Next:
    """One creation of ``take``, an in-flight slot in hand: uploads, pace, budget, request."""
    if ctx.stop_submitting.is_set():
        _not_started(ctx, take)
        return GIVE_UP
    # Uploads happen with the slot in hand, just before the creation: a URL checked for an
    # hour of validity is then used at once, not after hours in the queue.
    payload = await _prepare(ctx, take)
    if payload is None:
        return GIVE_UP
    if lost.resolver(ctx) is not None and await _found_on_resume(ctx, take, payload):
        return IN_FLIGHT
    # The pace first, the budget after it: a take reserves its credits only when it is sent
    # in the same step, so no reservation ever waits. One that waited here was dropped when
    # a later take met the cap (and a budget with room for two takes rendered one), and kept
    # its credits when Ctrl-C cancelled the wait.
    await ctx.bucket.acquire()
    if ctx.stop_submitting.is_set():
        _not_started(ctx, take)
        return GIVE_UP
    if not ctx.budget.try_reserve(take.key, estimate):
        _budget_stop(ctx, take.key, estimate)
        _not_started(ctx, take)
        return GIVE_UP
    sent = _commit_attempt(ctx, take, payload, estimate)
    if sent is None:
        return GIVE_UP
    return await _send(ctx, take, sent, estimate, tries)


def _commit_attempt(ctx: RunContext, take: Take, payload: dict[str, Any],
                    estimate: float | None) -> Mapping[str, Any] | None:
    """The reserved creation made durable (attempt in the store, intent in the journal):
    the body to send, or None (credits given back) when the intent could not be written.

    No await from the reservation to the request: what is reserved is what is sent, and
    whatever stops it before then gives the credits back."""
    key = take.key
    try:
        ctx.set_phase(take, Phase.SUBMITTING)
        _drop_stale_part(ctx, take)
        _record_sources(ctx, take)
        attempt = ctx.store.mark_submitting(
            key, redact_value(payload), estimate, ctx.budget.unit,
            account=None if ctx.crew is None else ctx.crew.account_of(key, ctx.store),
            cap=ctx.budget.max_credits if ctx.crew is not None and ctx.crew.shared else None)
    except BudgetRefused as refused:
        # The team's ledger is full: other runners committed what this guard did not know.
        ctx.budget.release(key, estimate)
        ctx.budget.learn_ledger(refused.committed)
        _budget_stop(ctx, key, estimate)
        _not_started(ctx, take)
        return None
    except ClaimLost:
        # This runner's lease ran out and another runner holds the take now: not created.
        ctx.budget.release(key, estimate)
        ctx.finish(take, Phase.LEFT, message="another runner took this take over")
        return None
    except BaseException:
        ctx.budget.release(key, estimate)
        raise
    log.info("take_submitting", attempt=attempt, estimate=estimate)
    sent = lost.identified(ctx, take, payload, attempt)
    if not _record_intent(ctx, take, attempt, estimate, sent):
        ctx.budget.release(key, estimate)
        return None
    return sent


async def _send(ctx: RunContext, take: Take, sent: Mapping[str, Any],
                estimate: float | None, tries: _Tries) -> Next:
    """The creation request itself, its answer committed with no await in between."""
    key = take.key
    ctx.critical.add(key)
    epoch = ctx.limiter.epoch
    try:
        state = await ctx.client_for(key).create_task(sent)
    except Exception as exc:
        decision = classify(exc, Stage.CREATION)
        if decision.reaction is Reaction.PROPAGATE or not isinstance(exc, GatewayError):
            raise
        return await _creation_failed(ctx, take, sent, estimate, exc, decision,
                                      tries, epoch)
    else:
        # No await between the answer and this commit: a crash loses nothing.
        _submitted(ctx, take, state, estimate)
        return IN_FLIGHT
    finally:
        ctx.critical.discard(key)


async def _creation_failed(ctx: RunContext, take: Take, sent: Mapping[str, Any],
                           estimate: float | None, exc: GatewayError, decision: Decision,
                           tries: _Tries, epoch: int) -> Next:
    """Act on the policy's reaction to a failed creation (the one place that does)."""
    key = take.key
    match decision.reaction:
        case Reaction.HOLD_AMBIGUOUS:
            if decision.stop is not None:  # answered by something plainly not the service
                ctx.stop(decision.stop, exc.message)
            return await _answer_lost(ctx, take, sent, estimate, exc.message)
        case Reaction.RETRY_NOW if isinstance(exc, GatewayUnreachable):
            _unsent(ctx, key, estimate, exc.message)
            wait = _unreached(ctx, take, exc)
            return GIVE_UP if wait is None else wait
        case Reaction.BACK_OFF:
            _unsent(ctx, key, estimate, exc.message)
            return _back_off(ctx, take, exc, decision, tries, epoch)
        case Reaction.STOP_SUBMITTING:
            _abandon(ctx, key, estimate)
            message = quota_message(exc, ctx.gateway.label)
            ctx.store.mark_failed(key, decision.kind or "quota", decision.code_of(exc), message)
            ctx.stop(decision.stop or StopReason.QUOTA, message)
            _not_started(ctx, take)
            return GIVE_UP
        case Reaction.STOP_RUN:
            _abandon(ctx, key, estimate)
            _auth_stop(ctx, take, exc)
            return GIVE_UP
        case _:  # FAIL_TAKE: a refusal; no task was created, the take fails with its words
            _abandon(ctx, key, estimate)
            _fail(ctx, take, decision.kind or "permanent", exc.code, exc.message)
            return GIVE_UP


def _back_off(ctx: RunContext, take: Take, exc: GatewayError, decision: Decision,
              tries: _Tries, epoch: int) -> Next:
    """A creation that certainly created nothing: the delay before the next, or GIVE_UP
    (the take failed) once its limit is used up. A 429 also lowers the in-flight limit."""
    if decision.slow_down:
        ctx.limiter.on_rate_limited(epoch)
        tries.limited += 1
        if tries.limited > ctx.settings.rate_limit_attempts:
            _fail(ctx, take, decision.kind or "transient", decision.code_of(exc),
                  f"still rate limited after {tries.limited} tries: {exc.message}")
            return GIVE_UP
        delay = ctx.settings.backoff.delay(min(tries.limited, 8), decision.retry_after)
        log.info("take_rate_limited", delay=round(delay, 3), limit=ctx.limiter.limit)
        return delay
    tries.transient += 1
    if tries.transient > ctx.settings.backoff.max_attempts:
        _fail(ctx, take, decision.kind or "transient", decision.code_of(exc), exc.message)
        return GIVE_UP
    delay = ctx.settings.backoff.delay(tries.transient, decision.retry_after)
    if not isinstance(exc, ConnectionFailed):
        log.info("take_create_retry", error=exc.message, delay=round(delay, 3))
    return delay


def _unsent(ctx: RunContext, key: str, estimate: float | None, message: str) -> None:
    """A creation that certainly created nothing: back to new, its credits given back."""
    _not_sent(ctx, key, message)
    ctx.budget.release(key, estimate)


def _abandon(ctx: RunContext, key: str, estimate: float | None) -> None:
    """A creation refused (no task was made) that is not tried again this run: its credits
    given back and its intent removed; the caller records why."""
    ctx.budget.release(key, estimate)
    ctx.intents.forget(key)


def _submitted(ctx: RunContext, take: Take, state: TaskState, estimate: float | None, *,
               found: bool = False) -> None:
    """Commit the task id (the take is in flight, holding its slot)."""
    ctx.store.mark_submitted(take.key, state.task_id, state.credits_reserved,
                             state.estimated_time, found=found)
    ctx.intents.task_arrived(take.key, state.task_id, state.credits_reserved)
    if not found:
        ctx.budget.correct(take.key, estimate, state.credits_reserved)
    ctx.limiter.on_success()
    log.info("take_submitted", task_id=state.task_id, credits=state.credits_reserved,
             found=found)
    ctx.at_gateway(take, state.task_id, status=state.status if state.status in (
        "pending", "processing") else "pending", progress=state.progress,
        started_at=ctx.clock(),  # a round trip late: its first poll sets it exactly
        hint=state.estimated_time, credits_reserved=state.credits_reserved, found=found or None)


async def _answer_lost(ctx: RunContext, take: Take, sent: Mapping[str, Any],
                       estimate: float | None, message: str) -> str:
    """A creation whose answer was lost: what the submission loop does next.

    At a provider that can say what became of it (Kling): IN_FLIGHT when its task was found
    and committed; AGAIN when it never arrived (the take is back to new with its budget
    given back; the next creation carries the same id). Otherwise, or when the look-up
    failed, it is ambiguous: AGAIN when the policy resubmits it now, GIVE_UP when it is held.
    """
    if lost.resolver(ctx) is not None:
        state = await lost.look_up(ctx, take, sent)
        if isinstance(state, TaskState):
            _submitted(ctx, take, state, estimate)
            return IN_FLIGHT
        if state is None:
            _not_sent(ctx, take.key, "the creation's answer was lost and the provider has "
                                     "no task by its id: it never arrived")
            ctx.budget.release(take.key, estimate)
            return AGAIN
    return AGAIN if await _ambiguous(ctx, take, message) else GIVE_UP


async def _found_on_resume(ctx: RunContext, take: Take, payload: Mapping[str, Any]) -> bool:
    """An earlier run lost this take's creation answer (it died while the creation was on
    the wire): look the attempt up by its id. True when its task was found and adopted
    (the caller's slot is then the task's); otherwise the take is new again, not billed."""
    record = ctx.store.record(take.key)
    if record.status not in (TakeStatus.AMBIGUOUS, TakeStatus.HELD) or not record.attempts:
        return False
    sent = lost.identified(ctx, take, payload, record.attempts)
    state = await lost.look_up(ctx, take, sent)
    if isinstance(state, TaskState):
        # Its credits are counted already: the budget started from the store's ledger,
        # where this attempt is ambiguous at its estimate.
        _submitted(ctx, take, state, None, found=True)
        return True
    if state is None:
        ctx.store.mark_never_created(take.key, "an earlier run lost the creation's answer; "
                                               "the provider has no task by its id")
        ctx.intents.forget(take.key, record.attempts)  # an earlier run's intent
    return False


def _not_sent(ctx: RunContext, key: str, message: str) -> None:
    """The creation certainly created nothing: back to new in the store, intent removed."""
    ctx.store.mark_not_sent(key, message)
    ctx.intents.forget(key)


def _record_intent(ctx: RunContext, take: Take, attempt: int, estimate: float | None,
                   sent: Mapping[str, Any]) -> bool:
    """Append the creation's intent to the journal beside the store, flushed, before it is
    sent (:mod:`runner.state.intents`: a store lost with it in flight still counts it). False,
    with the take failed (transient: the next run tries again), when it cannot be written:
    nothing is sent that a lost store could not account for."""
    external = sent.get(CLIENT_TASK_ID)
    try:
        ctx.intents.record(Intent(
            key=take.key, shot_id=take.shot_id, take=take.take, fingerprint=take.fingerprint,
            attempt=attempt, estimate=estimate,
            external_task_id=external if isinstance(external, str) else None,
            salt=ctx.store.client_salt() if external is not None else None, at=ctx.clock(),
            unit=ctx.budget.unit,
        ))
    except OSError as exc:
        ctx.store.mark_not_sent(take.key, f"its intent could not be written: {exc}")
        _fail(ctx, take, "transient", "intent_not_written",
              f"the record of its creation could not be written beside the store ({exc}); "
              "nothing was sent")
        return False
    return True


def _budget_stop(ctx: RunContext, key: str, estimate: float | None) -> None:
    """The next take does not fit: no more submissions (those sent are collected)."""
    ctx.stop(StopReason.BUDGET, ctx.budget.stop_message(key, estimate))


def _unreached(ctx: RunContext, take: Take, exc: GatewayUnreachable) -> float | None:
    """A quick retry's delay, or None once the run is stopped and the take not started."""
    wait = retry_or_stop(ctx, exc)
    if wait is None:
        _not_started(ctx, take)
    return wait


def _record_sources(ctx: RunContext, take: Take) -> None:
    """Continuity: remember which source outputs this submission's frames were cut from, so
    that the next sync sees when a source was rendered (or picked) anew."""
    sources = frame_sources(take)
    if sources:
        ctx.store.record_frame_hashes(
            take.key,
            {shot_id: ctx.uploads.source_hashes.get(shot_id, "") for shot_id in sources})


def _drop_stale_part(ctx: RunContext, take: Take) -> None:
    """A new task makes a half-downloaded result of an earlier task useless: resuming it
    with Range would splice two different videos."""
    try:
        part = ctx.files.of(take).part
        os.unlink(part)  # one system call; a stat first would be two when there is one
    except FileNotFoundError:  # the usual case
        return
    except OSError as exc:
        log.warning("stale_part_kept", error=str(exc))
        return
    log.info("stale_part_removed", part=str(part))


async def _ambiguous(ctx: RunContext, take: Take, message: str) -> bool:
    """Record a lost answer; True when the take may be resubmitted now (once, by policy)."""
    ctx.store.mark_ambiguous(take.key, message)
    ctx.ambiguous_seen += 1
    record = ctx.store.record(take.key)
    log.warning("take_ambiguous", message=message, times=record.ambiguous_attempts)
    if ctx.settings.ambiguous == "resubmit" and record.ambiguous_attempts <= 1:
        return True
    ctx.store.mark_held(take.key)
    ctx.finish(take, Phase.HELD, code="ambiguous_submission",
               message="the creation's answer was lost; held so as not to pay twice")
    return False
