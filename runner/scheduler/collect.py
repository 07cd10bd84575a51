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
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from runner.core.errors import (
    PERMANENT_TASK_CODES,
    AuthenticationFailed,
    DownloadError,
    DownloadRefused,
    GatewayError,
    GatewayUnreachable,
    LinkExpired,
    MalformedResponse,
    PermanentGatewayError,
    TransientGatewayError,
    VerifyError,
)
from runner.core.fsutil import fsync_dir, hash_file
from runner.core.model import Take
from runner.media.verify import VideoInfo
from runner.providers.download import finalize_download
from runner.scheduler.firstcontact import retry_or_stop
from runner.scheduler.run_context import Phase, RunContext, StopReason
from runner.scheduler.snapshot import TakeProgress
from runner.scheduler.submit import auth_message, quota_message
from runner.state import outputs
from runner.state.decide import link_lifetime_over, refused_result
from runner.state.records import TakeStatus
from runner.wire.protocol import TaskState

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
            ctx.limiter.release()

    try:
        return await _poll(ctx, take, free)
    finally:
        free()


async def _poll(ctx: RunContext, take: Take, free: Callable[[], None]) -> str:
    key = take.key
    record = ctx.store.record(key)
    task_id = record.task_id
    assert task_id is not None, f"{key}: polled without a task id"
    policy = ctx.settings.polling
    # From when the creation was sent: the task's clock at the gateway starts there, and a
    # wait computed from the reported progress must not fall short by the request's round
    # trip (it made one poll in fifty come early and cost a third poll).
    started = record.submitting_at or record.submitted_at or ctx.clock()
    # The gateway's clock for the task started somewhere in the creation's round trip.
    trip = max(0.0, record.submitted_at - started) if record.submitted_at else 0.0
    estimate = record.estimated_time
    elapsed = ctx.clock() - started
    aim = ctx.calibration.aim(policy, estimate)
    delay = aim.first - elapsed
    if delay <= 0:  # resumed, or late: ask soon, spread over the first interval
        aim.resumed()
        delay = aim.next_delay(elapsed, record.progress or 0, 0.0)
    errors = malformed = 0
    watching_since = ctx.clock()
    ctx.at_gateway(take, task_id, status=record.gateway_status or "pending",
                   progress=record.progress or 0, started_at=started, hint=estimate)
    while True:
        await asyncio.sleep(max(0.0, delay))
        try:
            state = await ctx.gateway.get_task(task_id)
        except AuthenticationFailed as exc:
            message = auth_message(exc, ctx.gateway.label)
            ctx.stop(StopReason.AUTH, message)
            ctx.halt()
            return _leave(ctx, take, message)
        except GatewayUnreachable as exc:
            # Never reached in this run (a wrong URL?): the task is paid and stays where it
            # is, for the next run to collect; a few quick tries, then the run stops.
            if (wait := retry_or_stop(ctx, exc)) is None:
                return _leave(ctx, take, exc.message)
            delay = wait
            continue
        except PermanentGatewayError as exc:
            # 400/404: the task id is unknown or expired at the gateway.
            return _task_failed(ctx, take, record.attempts, exc.code or "resource_not_found",
                                f"{ctx.gateway.label} no longer knows task {task_id}: "
                                f"{exc.message}", unknown=True)
        except (TransientGatewayError, MalformedResponse, GatewayError) as exc:
            errors += 1
            malformed = malformed + 1 if isinstance(exc, MalformedResponse) else 0
            if malformed > ctx.settings.malformed_limit:
                # An answer we cannot read will not get readable by asking faster; the task is
                # paid, so it is left (never resubmitted) and the summary says why.
                return _leave(ctx, take, f"{ctx.gateway.label}'s answers about task {task_id} "
                                         f"cannot be read ({exc.message}); the next run asks "
                                         "again")
            if errors > ctx.settings.poll_error_limit:
                return _leave(ctx, take, f"status queries keep failing ({exc.message}); "
                                         "the next run asks again")
            retry_after = exc.retry_after
            delay = ctx.settings.backoff.delay(min(errors, 8), retry_after)
            log.info("poll_retry", error=exc.message, delay=round(delay, 3))
            continue
        errors = 0
        # The progress was measured before this moment: an age taken now is never less than
        # the gateway's, so a wait computed from it never comes early.
        answered = ctx.clock()
        if state.status == "completed":  # learnt before the slot frees: the next aim uses it
            ctx.calibration.learn(aim, answered - started)
        elif state.status == "failed":
            ctx.calibration.forget(aim)
        else:
            aim.saw(answered - started, state.progress, trip)
        if state.status in ("completed", "failed"):
            # The task left the gateway: its slot is free there now, so the next creation
            # goes before this take's commits (a crash in between only means asking again).
            free()
            await asyncio.sleep(0)
        ctx.store.mark_progress(key, state.status, state.progress, polled=True)
        row = ctx.gateway_progress.get(key)
        if row is None or (row.status, row.progress) != (state.status, state.progress):
            ctx.event("take_status", key, task_id=task_id, status=state.status,
                      progress=state.progress, queue_position=state.queue_position)
        ctx.gateway_progress[key] = TakeProgress(key, state.status, state.progress, task_id,
                                                 state.queue_position, started, estimate)
        ctx.notify()
        if state.status == "completed":
            return _completed(ctx, take, state, started)
        if state.status == "failed":
            return _task_failed(ctx, take, record.attempts, state.error_code,
                                state.error_message or "the task failed")
        elapsed = answered - started
        timeout = ctx.settings.task_timeout
        waited = ctx.clock() - watching_since
        if timeout is not None and waited > timeout:
            return _leave(ctx, take, f"still {state.status} after {waited:.0f} s of waiting "
                                     f"(--task-timeout {timeout:g}); the next run checks again")
        # Counted from the answer, not from now: the commits above are already part of the
        # wait (else every look came late by them).
        delay = aim.next_delay(elapsed, state.progress, trip, hint=state.estimated_time) \
            - (ctx.clock() - answered)


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
    errors = refreshes = bad_files = 0
    while True:
        record = ctx.store.record(key)
        if record.result_url is None:
            return _fail(ctx, take, "permanent", "no_result", "no result URL is known")
        ctx.store.mark_downloading(key)
        try:
            saved = await ctx.gateway.download(record.result_url, part)
            ctx.event("take_downloaded", key, bytes=saved.size)
        except LinkExpired as exc:
            refreshes += 1
            if refreshes > ctx.settings.link_refreshes:
                return _fail(ctx, take, "transient", "link_expired", str(exc))
            outcome = await _refresh_link(ctx, take, record)
            if outcome != COMPLETED:
                return outcome
            continue
        except DownloadRefused as exc:
            # Paid, and the task still holds it: the next run asks again (never a new task).
            return _fail(ctx, take, "collectable", "download_refused", str(exc))
        except (DownloadError, TransientGatewayError, MalformedResponse) as exc:
            errors += 1
            if errors >= ctx.settings.download_attempts:
                return _fail(ctx, take, "transient", "download_failed",
                             f"downloading the result failed {errors} times: {exc}")
            if errors == ctx.settings.download_attempts // 2 and refreshes == 0:
                # The link's host keeps failing: ask the task for a fresh link (it may point
                # elsewhere, or the task may be gone) before using the remaining tries.
                refreshes += 1
                outcome = await _refresh_link(ctx, take, record)
                if outcome != COMPLETED:
                    return outcome
            delay = ctx.settings.backoff.delay(errors)
            log.info("download_retry", error=str(exc), delay=round(delay, 3))
            await asyncio.sleep(delay)
            continue
        except OSError as exc:  # the local disk: full, read-only, gone
            return _fail(ctx, take, "transient", "disk_error", _disk_message(part, exc))
        try:
            info, facts = await _verified(ctx, take, saved.path)
            ctx.event("take_verified", key, width=facts.get("width"),
                      height=facts.get("height"), duration=info.duration,
                      size_warning=facts.get("size_warning"))
        except VerifyError as exc:
            bad_files += 1
            ctx.event("take_rejected", key, message=str(exc), tries=bad_files)
            log.warning("output_rejected", error=str(exc), tries=bad_files)
            if bad_files > 1:
                return _fail(ctx, take, "collectable", "verify_failed",
                             f"{exc}{_keep_rejected(saved.path, dest)}")
            saved.path.unlink(missing_ok=True)  # maybe damaged on the way: fetch it again
            continue
        try:
            _file_output(ctx, take, saved.path, dest, saved.size, saved.sha256, info, facts)
        except OSError as exc:
            return _fail(ctx, take, "transient", "disk_error", _disk_message(dest, exc))
        return DONE


def rejected_path(dest: Path) -> Path:
    """``take-<n>.rejected.mp4``: where a paid result that failed its check is kept."""
    return dest.with_name(f"{dest.stem}.rejected{dest.suffix}")


def can_recheck(record: Any, dest: Path) -> bool:
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
    except VerifyError as exc:
        if not fail:
            log.info("rejected_output_still_fails", error=str(exc))
            return None
        return _fail(ctx, take, "collectable", "verify_failed",
                     f"{exc}; the file is kept as {kept.name} for you to inspect")
    except OSError as exc:
        return _fail(ctx, take, "transient", "disk_error", _disk_message(kept, exc))
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


def _link_deadline(ctx: RunContext, record: Any) -> float | None:
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


async def _refresh_link(ctx: RunContext, take: Take, record: Any, *,
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
            state = await ctx.gateway.get_task(task_id)
        except AuthenticationFailed as exc:
            message = auth_message(exc, ctx.gateway.label)
            ctx.stop(StopReason.AUTH, message)
            ctx.halt()
            return _leave(ctx, take, message)
        except GatewayUnreachable as exc:
            if (wait := retry_or_stop(ctx, exc)) is None:
                return _leave(ctx, take, exc.message)
            await asyncio.sleep(wait)
            continue
        except PermanentGatewayError as exc:
            if collecting:
                return _needs_creation(ctx, take, "resource_not_found",
                                       f"{ctx.gateway.label} no longer knows task {task_id} "
                                       f"({exc.message})")
            # The gateway no longer knows the task (expired, or an emulator restarted): the
            # same policy as a poll that finds it gone.
            return _task_failed(ctx, take, record.attempts, "resource_not_found",
                                f"the result could not be fetched and {ctx.gateway.label} no "
                                f"longer knows task {task_id}: {exc.message}", unknown=True)
        except GatewayError as exc:
            attempt += 1
            if attempt > ctx.settings.backoff.max_attempts:
                return _leave(ctx, take, f"refreshing the result link failed: {exc.message}")
            retry_after = exc.retry_after
            await asyncio.sleep(ctx.settings.backoff.delay(attempt, retry_after))
            continue
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
