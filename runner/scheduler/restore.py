"""Kept renders in a run: the on-disk check after ``sync``, and the ``restore`` step.

:func:`check_plans` runs once, before the engine starts: it looks at each take's files
(:func:`runner.state.kept.on_disk_action`) and, for a done take whose file is gone or changed,
commits that it is done no more (:func:`runner.state.ondisk.mark_output_lost`) before the
engine acts on it. :func:`restore_kept` is the engine's step for a ``restore`` action: it
puts a kept render back (hash checked) and commits ``done``; when no kept render survives
the check it answers the action the store's record calls for instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog

from runner.core.model import Manifest, Take
from runner.scheduler.run_context import Phase, RunContext
from runner.state import kept
from runner.state.decide import decide
from runner.state.protocol import Store
from runner.state.records import TakeAction, TakePlan

log = structlog.get_logger()


def check_plans(store: Store, manifest: Manifest, takes: Sequence[Take],
                plans: Sequence[TakePlan]) -> list[TakePlan]:
    """``plans`` with the files on disk taken into account (see :mod:`runner.state.kept`).

    A done take whose file is lost is moved out of ``done`` in the store here, durably,
    before anything acts on it; a changed file is set aside (never deleted) first, so that
    nothing later mistakes it for the verified render.
    """
    output_dir = manifest.output_dir
    by_key = {take.key: take for take in takes}
    checked: list[TakePlan] = []
    for plan in plans:
        take = by_key[plan.key]
        action, reason = kept.on_disk_action(output_dir, take, plan.record, plan.action,
                                             plan.reason)
        if (action, reason) == (plan.action, plan.reason):
            checked.append(plan)
            continue
        record = plan.record
        if plan.action is TakeAction.SKIP:  # a done take whose file is lost
            path = kept.done_path(output_dir, record)
            if reason == kept.FILE_CHANGED and action is not TakeAction.RESTORE:
                kept.set_aside(output_dir, Path(path))
            alive = kept.link_alive(record.task_id, record.link_expires_at)
            message = (kept.missing_message(manifest, take, record.credits,
                                            changed=reason == kept.FILE_CHANGED)
                       if action is TakeAction.FAILED else f"{path}: {reason}")
            store.mark_output_lost(plan.key, reason, link_alive=alive, message=message)
            # Info: the plan lines above say it per take (counted when many), the log keeps it.
            log.info("output_lost", take=plan.key, problem=reason, action=action)
            record = store.record(plan.key)
        checked.append(TakePlan(plan.key, record, action, reason, plan.previous))
    return checked


async def _put_back(ctx: RunContext, take: Take, render: kept.KeptRender) -> bool:
    """Restore ``render`` (hash checked) and mark ``take`` done; False when it fails."""
    output_dir = ctx.manifest.output_dir
    try:
        sha256, size = await asyncio.to_thread(kept.restore_files, output_dir, take, render)
    except (OSError, ValueError) as exc:
        log.warning("kept_render_unusable", video=str(render.video), error=str(exc))
        return False
    video = ctx.files.of(take).video
    ctx.store.mark_restored(take.key, take.fingerprint, video, sha256, size,
                  render.sidecar, reason=kept.KEPT_RENDER)
    log.info("take_restored", output=str(video), source=str(render.video))
    ctx.restored += 1
    ctx.finish(take, Phase.DONE)
    return True


async def restore_cut_from(ctx: RunContext, take: Take, sources: dict[str, str]) -> bool:
    """Before a take that starts from other shots' frames is sent: when one of its kept
    renders was cut from exactly the source outputs chosen now (``sources``: shot id ->
    SHA-256), put it back instead (an edit of its source undone). True when done so."""
    if not sources:
        return False
    wanted = ctx.store.renders_cut_from(take.key, take.fingerprint, sources)
    for render in list(kept.kept_renders(ctx.manifest.output_dir, take)) if wanted else ():
        if render.sha256 in wanted and await _put_back(ctx, take, render):
            return True
    return False


async def restore_kept(ctx: RunContext, take: Take) -> TakeAction | None:
    """Put a kept render of ``take`` back and mark it done: None.

    Each candidate's hash is checked first; one that fails it stays where it is. With none
    left, the action the store's record calls for (submit, download, poll, failed...).
    """
    for render in list(kept.kept_renders(ctx.manifest.output_dir, take)):
        if await _put_back(ctx, take, render):
            return None
    record = ctx.store.record(take.key)
    action, _reason = decide(record)
    if action is TakeAction.FAILED:
        message = record.last_error or "the kept render could not be restored"
        ctx.finish(take, Phase.FAILED, kind=record.failure_kind, code=record.last_error_code,
                   message=message)
    return action
