"""Export: the chosen take of every shot, in manifest order, plus an edit list for an editor.

An editor wants the sequence, not a folder tree of takes: ``<nn>-<shot-id>.mp4`` files that
sort in story order, and an edit list (CSV for spreadsheets and scripts, a CMX3600-style EDL
that every NLE imports) placing them back to back on a 24 fps timeline. ``nn`` is the shot's
position in the manifest, not among exported shots, so a shot that is not rendered yet leaves
a gap instead of renumbering everything after it.

Every file is written atomically (a temporary name in the target folder, fsync, rename): an
interrupted export never leaves a half-copied clip under a final name. ``--link`` hard-links
instead of copying (no extra disk, same bytes); the output's SHA-256 is checked either way,
so a render edited or damaged on disk since it was verified is refused, not exported.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from runner.fsutil import atomic_write_text, blocking_file, fsync_dir, fsync_file, hash_file
from runner.model import Manifest, Take
from runner.state.continuity import Pick, choose
from runner.state.records import TakeRecord

log = structlog.get_logger()

FPS = 24
EDL_START = 3600 * FPS  # record timecode starts at 01:00:00:00, as editors expect


class ExportError(Exception):
    """An export that cannot be made as asked (the message says what to do)."""


@dataclass(frozen=True, slots=True)
class Clip:
    """One shot of the sequence: its chosen take, and where it lands."""

    index: int  # 1-based position of the shot in the manifest
    shot_id: str
    take: int
    source: Path
    name: str  # file name in the export folder
    frames: int  # length on the 24 fps timeline
    sha256: str
    picked: bool


@dataclass(frozen=True, slots=True)
class Selection:
    """What an export contains, and the shots it has to leave out."""

    clips: tuple[Clip, ...]
    missing: tuple[str, ...]  # shot ids with no finished take


def shot_order(takes: Sequence[Take]) -> list[str]:
    """Shot ids in manifest order (each once)."""
    seen: dict[str, None] = {}
    for take in takes:
        seen.setdefault(take.shot_id, None)
    return list(seen)


def select(manifest: Manifest, records: Sequence[TakeRecord],
           picks: dict[str, Pick]) -> Selection:
    """The chosen take of every shot of ``manifest`` (picked, else the first finished)."""
    shots = shot_order(manifest.takes)
    width = max(2, len(str(len(shots))))
    fingerprints = {take.key: take.fingerprint for take in manifest.takes}
    by_shot: dict[str, list[TakeRecord]] = {}
    for record in records:
        # A record of an older fingerprint is not this manifest's take any more.
        if fingerprints.get(record.key) == record.fingerprint:
            by_shot.setdefault(record.shot_id, []).append(record)
    durations = {take.shot_id: take.request.duration for take in manifest.takes}
    clips: list[Clip] = []
    missing: list[str] = []
    for index, shot_id in enumerate(shots, start=1):
        pick = picks.get(shot_id)
        chosen = choose(by_shot.get(shot_id, []), pick)
        if chosen is None or not chosen.output_path or not chosen.sha256:
            missing.append(shot_id)
            continue
        seconds = chosen.verified_duration or float(durations[shot_id])
        clips.append(Clip(
            index=index, shot_id=shot_id, take=chosen.take, source=Path(chosen.output_path),
            name=f"{index:0{width}d}-{shot_id}.mp4", frames=max(1, round(seconds * FPS)),
            sha256=chosen.sha256, picked=pick is not None and pick.take == chosen.take,
        ))
    return Selection(tuple(clips), tuple(missing))


def timecode(frames: int) -> str:
    """``HH:MM:SS:FF`` at 24 fps (non-drop)."""
    seconds, ff = divmod(frames, FPS)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def edit_csv(clips: Sequence[Clip]) -> str:
    """The edit list as CSV: one row per clip, with timeline positions."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "shot_id", "take", "file", "frames", "seconds", "record_in",
                     "record_out", "picked", "sha256"])
    position = EDL_START
    for clip in clips:
        writer.writerow([clip.index, clip.shot_id, clip.take, clip.name, clip.frames,
                         f"{clip.frames / FPS:.3f}", timecode(position),
                         timecode(position + clip.frames), "yes" if clip.picked else "no",
                         clip.sha256])
        position += clip.frames
    return out.getvalue()


def edit_edl(title: str, clips: Sequence[Clip]) -> str:
    """A CMX3600-style EDL: one cut per clip, back to back from 01:00:00:00."""
    lines = [f"TITLE: {title}", "FCM: NON-DROP FRAME", ""]
    position = EDL_START
    for number, clip in enumerate(clips, start=1):
        reel = f"{clip.index:03d}"[:8]
        lines.append(f"{number:03d}  {reel:<8} V     C        "
                     f"{timecode(0)} {timecode(clip.frames)} "
                     f"{timecode(position)} {timecode(position + clip.frames)}")
        lines.append(f"* FROM CLIP NAME: {clip.name}")
        lines.append(f"* SHOT: {clip.shot_id} TAKE {clip.take}")
        lines.append("")
        position += clip.frames
    return "\n".join(lines)



def place(clip: Clip, folder: Path, *, link: bool) -> None:
    """Put ``clip`` at ``folder/clip.name`` atomically (copy, or hard link with ``link``)."""
    if not clip.source.is_file():
        raise ExportError(f"{clip.shot_id}: take {clip.take}'s output {clip.source} is "
                          "missing; run the manifest again to render it")
    if hash_file(clip.source)[0] != clip.sha256:
        raise ExportError(f"{clip.shot_id}: {clip.source} changed on disk since it was "
                          "verified; run the manifest again or restore the file")
    target = folder / clip.name
    temp = folder / f".{clip.name}.{os.getpid()}.tmp"
    temp.unlink(missing_ok=True)
    try:
        if link:
            try:
                os.link(clip.source, temp)
            except OSError as exc:
                raise ExportError(f"--link: cannot hard-link {clip.source} into {folder} "
                                  f"({exc.strerror}); export without --link to copy, or "
                                  "choose a folder on the same file system") from None
        else:
            shutil.copyfile(clip.source, temp)
            fsync_file(temp)
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    log.info("clip_exported", shot=clip.shot_id, take=clip.take, file=str(target),
             link=link)


EDIT_LISTS = ("edit.csv", "edit.edl")


def others(folder: Path, selection: Selection) -> list[str]:
    """Names in ``folder`` that this export does not write (sorted; hidden files left out).

    An export into a folder used before leaves the clips of shots since renamed or dropped
    (``01-s01-arrival.mp4`` beside the new ``01-s01.mp4``) while the edit lists name only the
    new ones. They are the user's files, never deleted: the command warns about them.
    """
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return []  # no folder yet (or unreadable: writing it says what is wrong)
    ours = {clip.name for clip in selection.clips} | set(EDIT_LISTS)
    return sorted(name for name in names if name not in ours and not name.startswith("."))


def export(manifest: Manifest, selection: Selection, folder: Path, *, link: bool) -> None:
    """Write every clip of ``selection`` and the edit lists (``edit.csv``, ``edit.edl``)."""
    blocking = blocking_file(folder)
    if blocking is not None:
        raise ExportError(f"{blocking} is a file, not a folder; choose a folder to export into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {folder}: {exc.strerror}") from None
    for clip in selection.clips:
        place(clip, folder, link=link)
    atomic_write_text(folder / EDIT_LISTS[0], edit_csv(selection.clips))
    atomic_write_text(folder / EDIT_LISTS[1], edit_edl(manifest.name, selection.clips))
    fsync_dir(folder)
