"""Writing an export folder: the clips, then the edit lists, each file atomically.

Everything that can refuse the export is done first (every chosen file checked and measured,
the timeline built and every edit list rendered to text), so a refused export writes nothing.
Then each clip is copied (or hard-linked, ``--link``: no extra disk, same bytes) under a
temporary name in the folder, flushed and renamed into place, and each edit list likewise:
an interrupted export never leaves a half-copied clip or a cut-off list under a final name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from runner.core.fsutil import atomic_write_text, blocking_file, fsync_dir, fsync_file
from runner.views.export import timeline as otio_timeline
from runner.views.export.chosen import Clip, measure, timeline_rate
from runner.views.export.formats import Format, edit_csv
from runner.views.export.select import ExportError, Missing, Selection

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Exported:
    """What an export wrote."""

    clips: tuple[Clip, ...]
    lists: tuple[str, ...]  # file names of the edit lists, in ``--format`` table order
    rate: float  # the timeline's frame rate


def place(clip: Clip, folder: Path, *, link: bool) -> None:
    """Put ``clip`` at ``folder/<its name>`` atomically (copy, or hard link with ``link``)."""
    name = clip.chosen.name
    target = folder / name
    temp = folder / f".{name}.{os.getpid()}.tmp"
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
    log.info("clip_exported", shot=clip.chosen.shot_id, take=clip.chosen.record.take,
             file=str(target), link=link)


def others(folder: Path, selection: Selection, lists: Collection[str]) -> list[str]:
    """Names in ``folder`` that this export does not write (sorted; hidden files left out).

    An export into a folder used before leaves the clips of shots since renamed or dropped
    (``01-s01-arrival.mp4`` beside the new ``01-s01.mp4``), and the edit lists of formats not
    asked for this time, while the edit lists written now name only the new clips. They are
    the user's files, never deleted: the command warns about them. ``lists``: the names of
    the edit lists written now.
    """
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return []  # no folder yet (or unreadable: writing it says what is wrong)
    ours = {chosen.name for chosen in selection.chosen} | set(lists)
    return sorted(name for name in names if name not in ours and not name.startswith("."))


def _render(title: str, selection: Selection, clips: Sequence[Clip], formats: Sequence[Format],
            folder: Path) -> tuple[float, dict[str, str]]:
    """Every edit list's text (file name -> text), and the timeline's rate."""
    measured = iter(clips)
    shots: list[Clip | Missing] = [
        shot if isinstance(shot, Missing) else next(measured) for shot in selection.shots
    ]
    rate = timeline_rate(clips)
    timeline = otio_timeline.build(title, shots, rate, folder)
    texts: dict[str, str] = {}
    for fmt in formats:
        if fmt.adapter is None:
            texts[fmt.file] = edit_csv(clips, timeline)
            continue
        try:
            texts[fmt.file] = otio_timeline.write(timeline, fmt.adapter)
        except (otio_timeline.OtioError, ValueError, TypeError) as exc:
            raise ExportError(f"--format {fmt.name}: OpenTimelineIO's {fmt.adapter} adapter "
                              f"cannot write this timeline ({exc})") from None
    return rate, texts


def export(title: str, selection: Selection, folder: Path, formats: Sequence[Format], *,
           link: bool) -> Exported:
    """Write every chosen clip of ``selection`` and the edit lists of ``formats``."""
    blocking = blocking_file(folder)
    if blocking is not None:
        raise ExportError(f"{blocking} is a file, not a folder; choose a folder to export into")
    clips = tuple(measure(chosen) for chosen in selection.chosen)
    rate, texts = _render(title, selection, clips, formats, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {folder}: {exc.strerror}") from None
    for clip in clips:
        place(clip, folder, link=link)
    for name, text in texts.items():
        try:
            atomic_write_text(folder / name, text, sync_dir=False)
        except OSError as exc:
            raise ExportError(f"cannot write {folder / name}: {exc.strerror or exc}") from None
    fsync_dir(folder)
    log.info("export_written", folder=str(folder), clips=len(clips), lists=sorted(texts),
             rate=rate)
    return Exported(clips, tuple(texts), rate)
