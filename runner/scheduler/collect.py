"""A task's second half: poll it until it finishes, then download, verify and file its video.

Polling (see :mod:`runner.scheduler.polling` for the timing) never gives a paid task up: if
the gateway stops answering, the take is *left* in the store with its task id and the next run
polls it again; it is never resubmitted. A task that failed for a transient reason is
resubmitted up to ``--retries`` times; a request-side failure fails the take with the
gateway's message.

Downloads wait for a slot in link-expiry order, stream to a ``.part`` file (resumed with
Range by the client), and are verified by decoding before the atomic rename. An expired link
(403/404/410) is refreshed by querying the task again; a file that does not verify is
downloaded once more, then reported.

A paid result that cannot be saved as offered (a link that is not http(s), a redirect loop, a
file over ``--max-result-size``, bytes that fail their check twice) fails the take as
*collectable*: the task id and link stay, and the next run collects it from the same task (a
fresh link asked of the task, the limits then in force, the kept ``.rejected.mp4`` checked
again) instead of paying for a new one. Only the provider's word (the task failed, or is
unknown) or the end of its documented result lifetime makes it need a new creation.

What each error means is :mod:`runner.scheduler.policy`'s to say; the poll
(:func:`_poll_failed`), the download (:func:`_download_failed`, :func:`_rejected`) and the
link refresh (:func:`_refresh_failed`) each act on its reaction in one place.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from runner.core.errors import (
    PERMANENT_TASK_CODES,
    GatewayError,
    GatewayUnreachable,
    VerifyError,
)
from runner.core.fsutil import fsync_dir, hash_file
from runner.core.model import Take
from runner.media.verify import VideoInfo
from runner.providers.download import finalize_download
from runner.scheduler.calibration import Aim
from runner.scheduler.firstcontact import retry_or_stop
from runner.scheduler.policy import Decision, Reaction, Stage, classify
from runner.scheduler.run_context import Phase, RunContext, StopReason
from runner.scheduler.snapshot import TakeProgress
from runner.scheduler.submit import auth_message, quota_message
from runner.state import outputs
from runner.state.decide import link_lifetime_over, refetching, refused_result
from runner.state.records import TakeRecord, TakeStatus
from runner.wire.protocol import Downloaded, TaskState

log = structlog.get_logger()

# What poll() and download() decided: the next step for the take.
COMPLETED, RETRY, FAILED, LEFT, DONE = "completed", "retry", "failed", "left", "done"


def _fail(ctx: RunContext, take: Take, kind: str, code: str | None, message: str) -> str:
    ctx.store.mark_failed(take.key, kind, code, message)
    log.warning("take_failed", kind=kind, code=code, message=message)
    ctx.finish(take, Phase.FAILED, kind=kind, code=code, message=message)
    return FAILED


def _leave(ctx: RunContext, take: Take, message: str) -> str:
    # Info: the summary lists what was left at the gateway and why; a console warning too
    # repeated it line for line (run.log keeps it).
    log.info("take_left_in_flight", message=message)
    ctx.finish(take, Phase.LEFT, message=message)
    return LEFT


async def poll(ctx: RunContext, take: Take) -> str:
    """Query the take's task until it completes or fails; always gives the slot back."""
    held = True

    def free() -> None:
        nonlocal held
        if held:
            held = False
            if ctx.crew is not None:
                ctx.crew.release_seat(take.key)
            ctx.limiter.release()

    try:
        return await _poll(ctx, take, free)
    finally:
        free()


@dataclass
class _Watch:
    """One task watched by :func:`_poll`: its clocks, its aim, and the errors met asking."""

    task_id: str
    attempts: int  # the take's creations so far (for --retries)
    started: float  # when the creation was sent: the task's clock at the gateway
    trip: float  # the creation's round trip: the gateway's clock started somewhere in it
    estimate: float | None
    aim: Aim
    since: float  # when this run started watching (for --task-timeout)
    errors: int = 0
    malformed: int = 0
    # Its task had finished (a result being fetched again): if the provider no longer knows
    # it, what was paid for is gone and only a new creation, asked for, renders it.
    refetch: bool = False


def _watch(ctx: RunContext, take: Take) -> tuple[_Watch, float]:
    """Start watching the take's task: the watch, and the wait before its first query."""
    record = ctx.store.record(take.key)
    task_id = record.task_id
    assert task_id is not None, f"{take.key}: polled without a task id"
    # From when the creation was sent: the task's clock at the gateway starts there, and a
    # wait computed from the reported progress must not fall short by the request's round
    # trip (it made one poll in fifty come early and cost a third poll).
    started = record.submitting_at or record.submitted_at or ctx.clock()
    trip = max(0.0, record.submitted_at - started) if record.submitted_at else 0.0
    estimate = record.estimated_time
    elapsed = ctx.clock() - started
    aim = ctx.calibration.aim(ctx.settings.polling, estimate)
    delay = aim.first - elapsed
    if delay <= 0:  # resumed, or late: ask soon, spread over the first interval
        aim.resumed()
        delay = aim.next_delay(elapsed, record.progress or 0, 0.0)
    watch = _Watch(task_id, record.attempts, started, trip, estimate, aim, ctx.clock(),
                   refetch=refetching(record))
    ctx.at_gateway(take, task_id, status=record.gateway_status or "pending",
                   progress=record.progress or 0, started_at=started, hint=estimate)
    return watch, delay


async def _poll(ctx: RunContext, take: Take, free: Callable[[], None]) -> str:
    watch, delay = _watch(ctx, take)
    while True:
        await asyncio.sleep(max(0.0, delay))
        try:
            state = await ctx.client_for(take.key).get_task(watch.task_id)
        except Exception as exc:
            decision = classify(exc, Stage.POLL)
            if decision.reaction is Reaction.PROPAGATE or not isinstance(exc, GatewayError):
                raise
            step = _poll_failed(ctx, take, watch, exc, decision)
        else:
            watch.errors = 0
            step = await _answered(ctx, take, watch, state, free)
        if isinstance(step, str):
            return step
        delay = step


def _poll_failed(ctx: RunContext, take: Take, watch: _Watch, exc: GatewayError,
                 decision: Decision) -> str | float:
    """Act on the policy's reaction to a failed status query: the delay before the next
    one, or what became of the take (the paid task is left, never given up)."""
    task_id, label = watch.task_id, ctx.gateway.label
    if (step := _cannot_ask(ctx, take, exc, decision)) is not None:
        return step
    if decision.reaction is Reaction.TASK_GONE and watch.refetch:
        return _needs_creation(ctx, take, decision.code_of(exc),
                               f"{label} no longer knows task {task_id} ({exc.message})")
    if decision.reaction is Reaction.TASK_GONE:
        return _task_failed(ctx, take, watch.attempts, decision.code_of(exc),
                            f"{label} no longer knows task {task_id}: {exc.message}",
                            unknown=True)
    watch.errors += 1
    watch.malformed = watch.malformed + 1 if decision.unreadable else 0
    if watch.malformed > ctx.settings.malformed_limit:
        # An answer we cannot read will not get readable by asking faster; the task is
        # paid, so it is left (never resubmitted) and the summary says why.
        return _leave(ctx, take, f"{label}'s answers about task {task_id} cannot be read "
                                 f"({exc.message}); the next run asks again")
    if watch.errors > ctx.settings.poll_error_limit:
        return _leave(ctx, take, f"status queries keep failing ({exc.message}); "
                                 "the next run asks again")
    delay = ctx.settings.backoff.delay(min(watch.errors, 8), decision.retry_after)
    log.info("poll_retry", error=exc.message, delay=round(delay, 3))
    return delay


def _cannot_ask(ctx: RunContext, take: Take, exc: GatewayError,
                decision: Decision) -> str | float | None:
    """A paid task that cannot be asked about at all: the key is refused (STOP_RUN: the run
    stops at once) or the gateway was never reached this run (RETRY_NOW: a few quick tries,
    then the run stops). The wait before asking again, LEFT once the run stopped (the task
    stays at the gateway for the next run to collect), or None for any other reaction."""
    if decision.reaction is Reaction.STOP_RUN:
        message = auth_message(exc, ctx.gateway.label)
        ctx.stop(decision.stop or StopReason.AUTH, message)
        ctx.halt()
        return _leave(ctx, take, message)
    if decision.reaction is Reaction.RETRY_NOW and isinstance(exc, GatewayUnreachable):
        # Never reached in this run (a wrong URL?): the task is paid and stays where it is.
        wait = retry_or_stop(ctx, exc)
        return _leave(ctx, take, exc.message) if wait is None else wait
    return None


async def _answered(ctx: RunContext, take: Take, watch: _Watch, state: TaskState,
                    free: Callable[[], None]) -> str | float:
    """Record a status answer: what became of the take, or the wait before the next query."""
    key, started = take.key, watch.started
    # The progress was measured before this moment: an age taken now is never less than
    # the gateway's, so a wait computed from it never comes early.
    answered = ctx.clock()
    if state.status == "completed":  # learnt before the slot frees: the next aim uses it
        ctx.calibration.learn(watch.aim, answered - started)
    elif state.status == "failed":
        ctx.calibration.forget(watch.aim)
    else:
        watch.aim.saw(answered - started, state.progress, watch.trip)
    if state.status in ("completed", "failed"):
        # The task left the gateway: its slot is free there now, so the next creation
        # goes before this take's commits (a crash in between only means asking again).
        free()
        await asyncio.sleep(0)
    ctx.store.mark_progress(key, state.status, state.progress, polled=True)
    _show_progress(ctx, take, watch, state)
    if state.status == "completed":
        return _completed(ctx, take, state, started)
    if state.status == "failed":
        return _task_failed(ctx, take, watch.attempts, state.error_code,
                            state.error_message or "the task failed")
    timeout = ctx.settings.task_timeout
    waited = ctx.clock() - watch.since
    if timeout is not None and waited > timeout:
        return _leave(ctx, take, f"still {state.status} after {waited:.0f} s of waiting "
                                 f"(--task-timeout {timeout:g}); the next run checks again")
    # Counted from the answer, not from now: the commits above are already part of the
    # wait (else every look came late by them).
    return watch.aim.next_delay(answered - started, state.progress, watch.trip,
                                hint=state.estimated_time) - (ctx.clock() - answered)


def _show_progress(ctx: RunContext, take: Take, watch: _Watch, state: TaskState) -> None:
    """Tell the observer about a task's new status or progress (only when it changed)."""
    key = take.key
    row = ctx.gateway_progress.get(key)
    if row is None or (row.status, row.progress) != (state.status, state.progress):
        ctx.event("take_status", key, task_id=watch.task_id, status=state.status,
                  progress=state.progress, queue_position=state.queue_position)
    ctx.gateway_progress[key] = TakeProgress(key, state.status, state.progress, watch.task_id,
                                             state.queue_position, watch.started,
                                             watch.estimate)
    ctx.notify()


def _completed(ctx: RunContext, take: Take, state: TaskState, started: float) -> str:
    if not state.results:
        return _fail(ctx, take, "permanent", "no_result",
                     f"task {state.task_id} completed without a result URL")
    ctx.store.mark_completed(take.key, state.results[0], _link_deadline(ctx, None))
    ctx.durations.append(max(0.0, ctx.clock() - started))
    log.info("take_completed", task_id=state.task_id)
    return COMPLETED


def _task_failed(ctx: RunContext, take: Take, attempts: int, code: str | None,
                 message: str, *, unknown: bool = False) -> str:
    """Fail the take, or send it again (RETRY) within ``--retries`` when the cause may pass.

    ``unknown``: the gateway no longer knows the task. Sending the take again pays for a new
    task while the lost one may have been billed too, so such takes are named in the summary.
    """
    if code == "quota_exceeded":
        ctx.stop(StopReason.QUOTA, quota_message(GatewayError(message, code=code),
                                                 ctx.gateway.label))
        return _fail(ctx, take, "quota", code, message)
    if code in PERMANENT_TASK_CODES or code is None:
        return _fail(ctx, take, "permanent", code, message)
    # Transient, request_cancelled, resource_not_found, or a code the docs do not list.
    retries_left = attempts <= ctx.settings.retries
    if retries_left and not ctx.stop_submitting.is_set():
        ctx.store.mark_failed(take.key, "transient", code, message)
        log.info("take_retry", code=code, message=message, attempt=attempts)
        if unknown:
            ctx.resubmitted_unknown.append(take.key)
        return RETRY
    return _fail(ctx, take, "transient", code,
                 message if not retries_left else f"{message} (after {attempts} attempts)")


async def download(ctx: RunContext, take: Take) -> str:
    """Save the take's result, verified, at its output path.

    Returns DONE, FAILED, LEFT, or RETRY when the task is gone at the gateway and a
    resubmission is allowed (the take is then failed/transient in the store).
    """
    key = take.key
    ctx.set_phase(take, Phase.DOWNLOADING)
    record = ctx.store.record(key)
    priority = record.link_expires_at if record.link_expires_at is not None else math.inf
    async with ctx.downloads.slot(priority):
        return await _download(ctx, take)


async def _download(ctx: RunContext, take: Take) -> str:
    key = take.key
    files = ctx.files.of(take)
    dest, part = files.video, files.part
    try:
        ctx.files.make_folder(files)
    except OSError as exc:  # the shot's folder cannot be made: a file in the way, no rights
        return _fail(ctx, take, "transient", "disk_error", _disk_message(files.folder, exc))
    if await _adopt_saved(ctx, take, dest, part):
        return DONE
    record = ctx.store.record(key)
    # Past the result's documented lifetime only the kept file is checked again (locally).
    collecting = refused_result(record) and not link_lifetime_over(record, ctx.clock())
    # A kept file that still fails, while collecting: fetched again below (it costs nothing).
    rechecked = await recheck_rejected(ctx, take, fail=not collecting)
    if rechecked is not None:
        return rechecked
    if collecting:
        # An earlier run could not save this paid result as offered: ask the task for its
        # result again (a fresh link) and fetch it under the limits in force now.
        outcome = await _refresh_link(ctx, take, record, collecting=True)
        if outcome != COMPLETED:
            return outcome
    tries = _Fetches(collecting=collecting or refetching(record))
    while True:
        record = ctx.store.record(key)
        if record.result_url is None:
            return _fail(ctx, take, "permanent", "no_result", "no result URL is known")
        ctx.store.mark_downloading(key)
        try:
            saved = await ctx.client_for(key).download(record.result_url, part)
            ctx.event("take_downloaded", key, bytes=saved.size)
        except Exception as exc:
            decision = classify(exc, Stage.DOWNLOAD)
            if decision.reaction is Reaction.PROPAGATE:
                raise
            step = await _download_failed(ctx, take, record, exc, decision, tries)
            if step is not None:
                return step
            continue
        filed = await _check_and_file(ctx, take, saved, tries)
        if filed is not None:
            return filed


@dataclass
class _Fetches:
    """What one take's download met this run, per limit."""

    errors: int = 0  # failed fetches (--download-attempts)
    refreshes: int = 0  # fresh links asked of the task (link_refreshes)
    bad_files: int = 0  # fetched files that failed their check (one more fetch, then kept)
    # A finished task whose result is fetched again (collected, or its file lost): gone at
    # the provider, it needs a new creation, never a resubmission unasked.
    collecting: bool = False


async def _download_failed(ctx: RunContext, take: Take, record: TakeRecord, exc: Exception,
                           decision: Decision, tries: _Fetches) -> str | None:
    """Act on the policy's reaction to a failed fetch: None to fetch again (after a fresh
    link or a backoff), or what became of the take."""
    kind, code = decision.kind or "transient", decision.code_of(exc)
    match decision.reaction:
        case Reaction.REFRESH_LINK:
            tries.refreshes += 1
            if tries.refreshes > ctx.settings.link_refreshes:
                return _fail(ctx, take, kind, code, str(exc))
            outcome = await _refresh_link(ctx, take, record, collecting=tries.collecting)
            return None if outcome == COMPLETED else outcome
        case Reaction.KEEP_COLLECTABLE:
            # Paid, and the task still holds it: the next run asks again (never a new task).
            return _fail(ctx, take, "collectable", code, str(exc))
        case Reaction.BACK_OFF:
            return await _fetch_again(ctx, take, record, exc, decision, tries)
    path = ctx.files.of(take).part  # FAIL_TAKE: the local disk (full, read-only, gone)
    return _fail(ctx, take, kind, code, _disk_message(path, exc) if isinstance(exc, OSError)
                 else str(exc))


async def _fetch_again(ctx: RunContext, take: Take, record: TakeRecord, exc: Exception,
                       decision: Decision, tries: _Fetches) -> str | None:
    """A fetch that failed on the way: back off and fetch again (None), until the tries are
    used up and the take fails (transient: its task keeps the result for the next run)."""
    tries.errors += 1
    if tries.errors >= ctx.settings.download_attempts:
        return _fail(ctx, take, decision.kind or "transient", decision.code,
                     f"downloading the result failed {tries.errors} times: {exc}")
    if tries.errors == ctx.settings.download_attempts // 2 and tries.refreshes == 0:
        # The link's host keeps failing: ask the task for a fresh link (it may point
        # elsewhere, or the task may be gone) before using the remaining tries.
        tries.refreshes += 1
        outcome = await _refresh_link(ctx, take, record, collecting=tries.collecting)
        if outcome != COMPLETED:
            return outcome
    delay = ctx.settings.backoff.delay(tries.errors)
    log.info("download_retry", error=str(exc), delay=round(delay, 3))
    await asyncio.sleep(delay)
    return None


async def _check_and_file(ctx: RunContext, take: Take, saved: Downloaded,
                          tries: _Fetches) -> str | None:
    """Verify a fetched result and file it: DONE, what became of the take, or None to
    fetch it again (a file maybe damaged on the way is fetched once more)."""
    key, dest = take.key, ctx.files.of(take).video
    try:
        info, facts = await _verified(ctx, take, saved.path)
        ctx.event("take_verified", key, width=facts.get("width"),
                  height=facts.get("height"), duration=info.duration,
                  size_warning=facts.get("size_warning"))
    except VerifyError as exc:
        return _rejected(ctx, take, saved.path, exc, classify(exc, Stage.VERIFY), tries)
    try:
        _file_output(ctx, take, saved.path, dest, saved.size, saved.sha256, info, facts)
    except OSError as exc:  # FAIL_TAKE: the local disk
        decision = classify(exc, Stage.VERIFY)
        return _fail(ctx, take, decision.kind or "transient", decision.code,
                     _disk_message(dest, exc))
    return DONE


def _rejected(ctx: RunContext, take: Take, path: Path, exc: VerifyError,
              decision: Decision, tries: _Fetches) -> str | None:
    """A fetched file failed its check: None to fetch it once more (RETRY_NOW: maybe
    damaged on the way), then the policy's give-up (KEEP_COLLECTABLE, the file kept)."""
    tries.bad_files += 1
    ctx.event("take_rejected", take.key, message=str(exc), tries=tries.bad_files)
    log.warning("output_rejected", error=str(exc), tries=tries.bad_files)
    if tries.bad_files > 1:
        return _fail(ctx, take, decision.kind or "collectable", decision.code,
                     f"{exc}{_keep_rejected(path, ctx.files.of(take).video)}")
    path.unlink(missing_ok=True)
    return None


def rejected_path(dest: Path) -> Path:
    """``take-<n>.rejected.mp4``: where a paid result that failed its check is kept."""
    return dest.with_name(f"{dest.stem}.rejected{dest.suffix}")


def can_recheck(record: TakeRecord, dest: Path) -> bool:
    """A take failed by its check whose paid file is still kept beside it: the next run
    checks that file again under the rules in force then (:func:`_recheck_rejected`)."""
    return (record.status is TakeStatus.FAILED and record.last_error_code == "verify_failed"
            and os.path.isfile(rejected_path(dest)))


async def recheck_rejected(ctx: RunContext, take: Take, *, fail: bool = True) -> str | None:
    """Check a kept rejected file again; DONE or FAILED, None when there is none to check
    (or, with ``fail=False``, when it still fails: the caller then fetches the result again
    from its task, or, for ``--retry-failed`` on a task past its lifetime, pays for a new one).

    A take failed under an assumption that no longer holds (a size shotrun expected before
    ``verify.size`` was ``warn``, or before ``shotrun probe`` said what this gateway renders)
    is then done from the file it already paid for: nothing is downloaded or paid again.
    """
    dest = ctx.files.of(take).video
    record = ctx.store.record(take.key)
    if not can_recheck(record, dest):
        return None
    kept = rejected_path(dest)
    try:
        info, facts = await _verified(ctx, take, kept)
        sha256, size = await asyncio.to_thread(hash_file, kept)
    except (VerifyError, OSError) as exc:
        decision = classify(exc, Stage.VERIFY)
        if isinstance(exc, OSError):  # FAIL_TAKE: the local disk
            return _fail(ctx, take, decision.kind or "transient", decision.code,
                         _disk_message(kept, exc))
        if not fail:
            log.info("rejected_output_still_fails", error=str(exc))
            return None
        return _fail(ctx, take, "collectable", decision.code,  # still KEEP_COLLECTABLE
                     f"{exc}; the file is kept as {kept.name} for you to inspect")
    ctx.store.mark_downloading(take.key)
    try:
        _file_output(ctx, take, kept, dest, size, sha256, info, facts)
    except OSError as exc:
        return _fail(ctx, take, "transient", "disk_error", _disk_message(dest, exc))
    log.info("rejected_output_adopted", output=str(dest), file=kept.name)
    return DONE


def _keep_rejected(part: Path, dest: Path) -> str:
    """Keep a paid result that failed its check twice as ``take-<n>.rejected.mp4``.

    The same bytes twice means the gateway made them so; they were paid for, and the check
    may be stricter than the user's player. Never counted as the take's output. Returns the
    message's tail naming the kept file ("" when it could not be kept).
    """
    kept = rejected_path(dest)
    try:
        os.replace(part, kept)
    except OSError as exc:
        log.warning("rejected_output_not_kept", error=str(exc))
        part.unlink(missing_ok=True)
        return ""
    return f"; the file is kept as {kept.name} for you to inspect"


def _disk_message(path: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return (f"cannot write {path}: {reason}; free some space or fix the permissions, then run "
            "again (the result link is kept: collecting it spends nothing)")


def _file_output(ctx: RunContext, take: Take, part: Path | None, dest: Path, size: int,
                 sha256: str, info: VideoInfo, facts: dict[str, Any]) -> None:
    """Put a verified video in place and commit ``done``.

    Order matters for a crash at any instant: files of another fingerprint are moved aside,
    the sidecar (naming this fingerprint) is written and fsynced, the fsynced ``.part`` is
    renamed atomically, one flush of the folder makes both renames durable, and only then is
    the take marked done; a run that dies in between finds either the ``.part`` to finish or
    the video with its sidecar to adopt (:func:`_adopt_saved`). Should a power cut keep the
    video's rename but lose the sidecar's (the journal keeps them in order on common
    filesystems), the next run downloads the result again and moves the unnamed video to
    ``history/unknown``: nothing is lost or overwritten.
    """
    duration = info.duration
    files = ctx.files.of(take)
    record = ctx.store.record(take.key)
    outputs.archive_stale(ctx.manifest.output_dir, take, files, record.task_id)
    outputs.write_take_sidecar(files, ctx.manifest, take, record,
                               sha256=sha256, size=size, verified_duration=duration,
                               facts=facts)
    if part is not None:
        # A Downloaded's file is fsynced by its writer (the Gateway protocol says so).
        finalize_download(part, dest, part_synced=True, sync_dir=False)
    fsync_dir(files.folder)
    ctx.store.mark_done(take.key, dest, size, sha256, duration, video=facts)
    ctx.downloaded += 1
    if facts["size_warning"]:
        # Info: the summary says each distinct size once; a console line per take would
        # repeat it 22 times for 22 takes.
        warning = facts["size_warning"]
        ctx.size_warnings[warning] = ctx.size_warnings.get(warning, 0) + 1
        log.info("output_size_unexpected", size_warning=facts["size_warning"],
                 expected_from=facts["expected_from"])
    log.info("take_done", output=str(dest), size=size)
    ctx.finish(take, Phase.DONE, path=str(dest), bytes=size)


async def _adopt_saved(ctx: RunContext, take: Take, dest: Path, part: Path) -> bool:
    """A run that died after the rename but before ``done``: verify the file and adopt it."""
    if not os.path.isfile(dest) or os.path.exists(part):
        return False
    saved = outputs.read_sidecar(dest)
    if not saved or saved.get("fingerprint") != take.fingerprint:
        return False
    if saved.get("task_id") not in (None, ctx.store.record(take.key).task_id):
        return False  # an earlier render of this fingerprint (its source changed): kept
    try:
        info, facts = await _verified(ctx, take, dest)
        sha256, size = await asyncio.to_thread(hash_file, dest)
    except (VerifyError, OSError) as exc:
        log.info("saved_output_not_adopted", error=str(exc))
        return False
    ctx.store.mark_downloading(take.key)
    _file_output(ctx, take, None, dest, size, sha256, info, facts)
    log.info("saved_output_adopted", output=str(dest))
    return True



# Outputs are decoded in one thread of their own: libav's buffers then live in one malloc
# arena, reused file after file, instead of one arena per thread of the loop's default pool,
# each keeping its high-water mark (18 MB of the peak RSS of a run of 1,000 instant takes).
# Checking a file costs a few ms of CPU: one thread keeps up with any gateway.
_DECODER = ThreadPoolExecutor(1, thread_name_prefix="shotrun-verify")


async def _verified(ctx: RunContext, take: Take, path: Path
                    ) -> tuple[VideoInfo, dict[str, Any]]:
    """The file checked by the run's rule (:mod:`runner.media.observed`), and its facts."""
    return await asyncio.get_running_loop().run_in_executor(
        _DECODER, ctx.expectations.check, path, take.request)


def _link_deadline(ctx: RunContext, record: TakeRecord | None) -> float | None:
    """When the task's result stops being served, as the provider documents it: counted
    from the task's first completion (a fresh link does not extend it); None when the
    provider documents no lifetime."""
    lifetime = ctx.settings.link_lifetime
    if lifetime is None:
        return None
    finished = record.completed_at if record is not None else None
    return (finished if finished is not None else ctx.clock()) + lifetime


def _needs_creation(ctx: RunContext, take: Take, code: str | None, message: str) -> str:
    """The provider can no longer serve a paid take's result: only a new task renders it,
    which ``--retry-failed`` creates (the summary says what it costs): in this very run
    (RETRY) when the user asked for it, else the take fails and waits for that."""
    message = f"{message}; it needs a new creation"
    if ctx.settings.retry_failed and not ctx.stop_submitting.is_set():
        ctx.store.mark_failed(take.key, "permanent", code, message)
        log.info("take_recreated", code=code, message=message)
        return RETRY
    return _fail(ctx, take, "permanent", code, message)


async def _refresh_link(ctx: RunContext, take: Take, record: TakeRecord, *,
                        collecting: bool = False) -> str:
    """Ask the task for a fresh result link: COMPLETED, or what became of the take.

    ``collecting``: the take's result was refused by an earlier run; a task the provider no
    longer knows, or one it says failed, then needs a new creation (never made unasked).
    """
    task_id = record.task_id
    if task_id is None:
        return _fail(ctx, take, "permanent", "link_expired",
                     "the link expired and no task id is known")
    attempt = 0
    while True:
        try:
            state = await ctx.client_for(take.key).get_task(task_id)
        except Exception as exc:
            decision = classify(exc, Stage.LINK_REFRESH)
            if decision.reaction is Reaction.PROPAGATE or not isinstance(exc, GatewayError):
                raise
            if decision.reaction is Reaction.BACK_OFF:
                attempt += 1
            step = _refresh_failed(ctx, take, record, exc, decision, attempt,
                                   collecting=collecting)
            if isinstance(step, str):
                return step
            await asyncio.sleep(step)
            continue
        return _fresh_link(ctx, take, record, state, collecting=collecting)


def _refresh_failed(ctx: RunContext, take: Take, record: TakeRecord, exc: GatewayError,
                    decision: Decision, attempt: int, *, collecting: bool) -> str | float:
    """Act on the policy's reaction to a failed link refresh: the delay before asking again,
    or what became of the take (the paid task is left, or found gone)."""
    task_id, label = record.task_id, ctx.gateway.label
    if (step := _cannot_ask(ctx, take, exc, decision)) is not None:
        return step
    match decision.reaction:
        case Reaction.TASK_GONE if collecting:
            return _needs_creation(ctx, take, decision.code,
                                   f"{label} no longer knows task {task_id} ({exc.message})")
        case Reaction.TASK_GONE:
            # The gateway no longer knows the task (expired, or an emulator restarted): the
            # same policy as a poll that finds it gone.
            return _task_failed(ctx, take, record.attempts, decision.code,
                                f"the result could not be fetched and {label} no longer "
                                f"knows task {task_id}: {exc.message}", unknown=True)
    if attempt > ctx.settings.backoff.max_attempts:  # BACK_OFF, given up: LEAVE
        return _leave(ctx, take, f"refreshing the result link failed: {exc.message}")
    return ctx.settings.backoff.delay(attempt, decision.retry_after)


def _fresh_link(ctx: RunContext, take: Take, record: TakeRecord, state: TaskState, *,
                collecting: bool) -> str:
    """The task's answer to a link refresh: COMPLETED with its new link committed, or what
    became of the take."""
    task_id = record.task_id
    if collecting and state.status == "failed":
        return _needs_creation(ctx, take, state.error_code or "task_failed",
                               f"{ctx.gateway.label} says task {task_id} failed: "
                               f"{state.error_message or 'no reason given'}")
    if collecting and state.status in ("pending", "processing"):
        return _leave(ctx, take, f"task {task_id} is {state.status} again at "
                                 f"{ctx.gateway.label}; the next run asks again")
    if state.status != "completed" or not state.results:
        return _fail(ctx, take, "permanent", "link_expired",
                     f"the result link expired and task {task_id} has no new one")
    ctx.store.mark_completed(take.key, state.results[0], _link_deadline(ctx, record))
    log.info("link_refreshed", task_id=task_id)
    return COMPLETED
