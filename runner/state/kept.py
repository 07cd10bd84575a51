"""Kept renders: every verified output stays findable by its fingerprint and comes back free.

A take's verified video and its sidecar (which names the fingerprint, the task id, the credits
and the SHA-256) are never deleted: when the take is rendered anew they move to
``<shot>/history/<fp12>[-n]/``. Whenever a take's fingerprint matches such a kept render again
(an edit undone, a provider switched back, a shot renamed back) the render is moved back into
place at zero cost instead of paying for a new task, as Nextflow's ``-resume`` and DVC's cache
restore earlier results by hash.

The same module answers "done means on disk": a done take whose file is missing or changed is
noticed on every run (and by ``status``). Checking is cheap on purpose: one ``stat`` per take
compares size and modification time with what was recorded; the file is hashed only when its
time moved past the moment it was verified (touched, copied over, rewritten).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from runner.core.fsutil import atomic_write_bytes, fsync_dir, hash_file
from runner.core.model import Manifest, Take
from runner.core.money import format_amount, unit_of
from runner.state.continuity import frame_sources
from runner.state.decide import lifetime_over
from runner.state.outputs import HISTORY_DIR, move_aside, read_sidecar, sidecar_path, take_files
from runner.state.records import FailureKind, TakeAction, TakeOutput, TakeRecord, TakeStatus
from runner.wire.payload import estimate_credits

log = structlog.get_logger()

# A verified file is written before the moment it is recorded done (``downloaded_at``), and a
# restored one keeps its older time: a later time means it was touched since. (A filesystem
# whose clock runs ahead of ours only costs a hash per run.)
_MTIME_SLACK = 0.0
CHANGED_DIR = "changed"  # history/changed[-n]/: done files found changed, set aside


@dataclass(frozen=True, slots=True)
class KeptRender:
    """A verified render of one take's fingerprint, kept on disk with its sidecar."""

    video: Path
    sidecar: dict[str, Any]
    in_place: bool  # already at the take's own path (a restore that died half-way)

    @property
    def sha256(self) -> str:
        return str(self.sidecar["sha256"])

    @property
    def size(self) -> int:
        return int(self.sidecar["size"])


def _fits(video: Path, data: dict[str, Any] | None, fingerprint: str) -> bool:
    """The sidecar names ``fingerprint`` and a hash, and the video beside it has its size."""
    if not data or data.get("fingerprint") != fingerprint:
        return False
    sha256, size = data.get("sha256"), data.get("size")
    if not isinstance(sha256, str) or isinstance(size, bool) or not isinstance(size, int):
        return False
    try:
        return os.stat(video).st_size == size
    except OSError:
        return False


def kept_renders(output_dir: Path, take: Take | TakeRecord | TakeOutput, *, in_place: bool = True
                 ) -> Iterator[KeptRender]:
    """Every kept render of ``take``'s current fingerprint, the one in place first.

    Looks only in the take's own shot folder: its ``take-<n>.mp4`` (``in_place``) and the
    history folders named after the fingerprint (``<fp12>``, ``<fp12>-2``...). Sizes are
    checked here; hashes when a render is restored (:func:`restore_files`).
    """
    if not os.path.isdir(os.path.join(output_dir, take.shot_id)):
        return  # the usual answer for a take never rendered: one stat, no path checks
    files = take_files(output_dir, take)
    fingerprint = take.fingerprint
    if in_place:
        data = read_sidecar(files.video)
        if _fits(files.video, data, fingerprint) and data is not None:
            yield KeptRender(files.video, data, True)
    stem = fingerprint[:12]
    if not stem:
        return
    try:
        with os.scandir(files.folder / HISTORY_DIR) as entries:
            names = sorted(entry.name for entry in entries
                           if entry.is_dir(follow_symlinks=False)
                           and (entry.name == stem or entry.name.startswith(stem + "-")))
    except OSError:
        return
    for name in names:
        video = files.folder / HISTORY_DIR / name / files.video.name
        data = read_sidecar(video)
        if _fits(video, data, fingerprint) and data is not None:
            yield KeptRender(video, data, False)


def has_kept_render(output_dir: Path, take: Take | TakeRecord | TakeOutput, *,
                    in_place: bool = True) -> bool:
    """True when :func:`kept_renders` finds one (sizes checked, not hashes)."""
    try:
        return next(kept_renders(output_dir, take, in_place=in_place), None) is not None
    except (OSError, ValueError):
        return False


def set_aside(output_dir: Path, video: Path) -> Path | None:
    """Move ``video`` alone to a fresh ``history/changed[-n]/`` folder; return the folder.

    For a file that is not the verified render its sidecar describes (changed on disk): it
    is never deleted, and, having no sidecar of its own there, is never restored by mistake.
    """
    return move_aside(output_dir, video, CHANGED_DIR, "changed on disk", which="video")


def restore_files(output_dir: Path, take: Take | TakeRecord | TakeOutput,
                  render: KeptRender) -> tuple[str, int]:
    """Put ``render`` at ``take``'s path, after checking its hash; (SHA-256, size).

    ``ValueError`` when the kept file is not what its sidecar says (it stays where it is).
    Whatever sits at the take's path is moved aside first, never overwritten: a render of
    another fingerprint to its own history folder (with its sidecar), a file of this
    fingerprint that changed to ``history/changed/``.
    """
    sha256, size = hash_file(render.video)
    if sha256 != render.sha256 or size != render.size:
        raise ValueError(f"{render.video} is not the render its sidecar describes")
    if render.in_place:
        return sha256, size
    files = take_files(output_dir, take)
    if os.path.exists(files.video):
        owner = read_sidecar(files.video)
        fingerprint = owner.get("fingerprint") if owner else None
        if isinstance(fingerprint, str) and fingerprint != take.fingerprint:
            move_aside(output_dir, files.video, fingerprint, "restore", which="render")
        else:
            set_aside(output_dir, files.video)
    source = render.video
    # A copy of the sidecar first, then the video, then the kept sidecar goes: a run that
    # dies at any point finds the render whole either still kept (sidecar and video in
    # history) or in place (both at the take's path), and restores it again.
    atomic_write_bytes(files.sidecar, sidecar_path(source).read_bytes(), sync_dir=False)
    os.rename(source, files.video)
    fsync_dir(files.folder)
    os.unlink(sidecar_path(source))
    fsync_dir(source.parent)
    with contextlib.suppress(OSError):  # an emptied history folder goes; a full one stays
        source.parent.rmdir()
    log.info("kept_render_restored", video=str(files.video), source=str(source))
    return sha256, size


# ---------------------------------------------------------------- done means on disk
MISSING, CHANGED = "missing", "changed"


def done_path(output_dir: Path, record: TakeRecord | TakeOutput) -> str:
    """Where a done take's video is: ``<output_dir>/<shot>/take-<n>.mp4``, as a string.

    Built from the names rather than the stored path, so an output folder moved as a whole
    still checks; the names were checked when the take was rendered.
    """
    return os.path.join(output_dir, record.shot_id, f"take-{record.take}.mp4")


def output_problem(output_dir: Path, record: TakeRecord | TakeOutput) -> str | None:
    """None when a done take's file is as verified; :data:`MISSING` or :data:`CHANGED`.

    One ``stat``; the hash only when the file's time moved past its verification.
    """
    path = done_path(output_dir, record)
    try:
        info = os.stat(path)
    except OSError:
        return MISSING
    if record.size is not None and info.st_size != record.size:
        return CHANGED
    verified = record.downloaded_at
    if verified is not None and info.st_mtime > verified + _MTIME_SLACK:
        try:
            sha256, _size = hash_file(Path(path))
        except OSError:
            return MISSING
        if record.sha256 is not None and sha256 != record.sha256:
            return CHANGED
    return None


def link_alive(task_id: str | None, link_expires_at: float | None, now: float | None = None
               ) -> bool:
    """Whether the task can still hand its result out: a known id, within the provider's
    documented result lifetime (:func:`runner.state.decide.lifetime_over`, the one rule the
    collecting run follows too)."""
    if not task_id:
        return False
    return not lifetime_over(link_expires_at, time.time() if now is None else now)


def rerender_cost(manifest: Manifest, take: Take, charged: float | None) -> str:
    """``about 24.3 credits`` (in the unit the provider bills in, :mod:`runner.core.money`): what
    rendering ``take`` again would cost (the estimate, else what was charged)."""
    unit = unit_of(manifest.api.provider)
    estimate = estimate_credits(take.request, manifest.budget.rates_for(unit))
    value = estimate if estimate is not None else charged
    return ("an unknown amount" if value is None
            else f"about {format_amount(value, unit, short=True)}")


def missing_message(manifest: Manifest, take: Take, charged: float | None, *,
                    changed: bool = False) -> str:
    """What a take lost for good says: why, and what bringing it back would cost.

    No path: the run's summary groups takes by message, one line for all of them.
    ``changed``: the file is there but is not the render (it was set aside).
    """
    what = "changed (set aside in history/changed/)" if changed else "gone"
    return (f"missing: its file is {what} and no kept render or live task can bring it "
            "back; `shotrun run --retry-failed` renders it again and spends "
            f"{rerender_cost(manifest, take, charged)}")


# ---------------------------------------------------------------- what a run does about it
FILE_MISSING, FILE_CHANGED, KEPT_RENDER = "file missing", "file changed", "kept render"


def on_disk_action(output_dir: Path, take: Take, record: TakeRecord | None,
                   action: TakeAction, reason: str, *,
                   now: float | None = None) -> tuple[TakeAction, str]:
    """The run's (action, reason) for ``take`` once its files on disk are looked at.

    Read-only, so ``plan`` and ``status`` say exactly what a run will do:

    * a done take whose file is as verified stays ``skip``; one whose file is missing or
      changed is ``restore`` (a kept render of its fingerprint exists), else ``download``
      / ``poll`` while its task can hand the result out again, else ``failed`` (missing);
    * a take to render (``submit``) whose fingerprint matches a kept render, or a take
      failed as missing whose render is back on disk, is ``restore`` (0 credits).

    A take cut from another shot's frame keeps its fingerprint when that frame changes: which
    kept render fits depends on the source output chosen when it is sent, so the run decides
    that itself (:func:`runner.scheduler.restore.restore_cut_from`), never this function.
    """
    if action is TakeAction.SKIP and record is not None and record.status is TakeStatus.DONE:
        problem = output_problem(output_dir, record)
        if problem is None:
            return action, reason  # the usual answer: one stat, nothing else
        why = FILE_MISSING if problem == MISSING else FILE_CHANGED
        if not frame_sources(take) and has_kept_render(output_dir, take, in_place=False):
            return TakeAction.RESTORE, why
        if link_alive(record.task_id, record.link_expires_at, now):
            return (TakeAction.DOWNLOAD if record.result_url else TakeAction.POLL), why
        return TakeAction.FAILED, MISSING
    lost = (action in (TakeAction.FAILED, TakeAction.RETRY) and record is not None
            and record.failure_kind == FailureKind.MISSING.value)
    if (action is TakeAction.SUBMIT or lost) and not frame_sources(take) \
            and has_kept_render(output_dir, take):
        return TakeAction.RESTORE, KEPT_RENDER
    return action, reason
