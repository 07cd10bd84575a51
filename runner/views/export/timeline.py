"""The edit as one OpenTimelineIO timeline, written out through OTIO's adapters.

OpenTimelineIO (the Academy Software Foundation's editorial interchange library) reads and
writes EDL, Final Cut Pro 7 XML and its own ``.otio``; writing them ourselves would repeat its
work, less well. The timeline is built once (one video track: each shot's chosen take in
manifest order, a gap where a shot has no finished take), and each format is written from a
copy of it (an adapter may change the timeline it is handed).

OTIO ships no type information: this module is the one place that touches it, and hands the
rest of shotrun plain types (a timeline is opaque to callers: they only pass it back here).

Editors expect a sequence to start at 01:00:00:00; the timeline says so with
``global_start_time``, which the ``.otio`` and the FCP XML keep. The CMX 3600 writer ignores
it, so the EDL is written from a copy whose track starts an hour early.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import opentimelineio as otio
import structlog

from runner.views.export.chosen import Clip
from runner.views.export.provenance import NAMESPACE, clip_metadata, gap_metadata, logging_info
from runner.views.export.select import Missing

log = structlog.get_logger()

Timeline = Any  # an ``opentimelineio.schema.Timeline``, opaque outside this module
START = "01:00:00:00"
REEL_LENGTH = 8  # CMX 3600: a reel name is at most 8 characters
_RESERVED_REELS = frozenset({"AX", "BL", "BLACK", "BARS"})  # sources that are not files
OtioError = otio.exceptions.OTIOError


def installed_adapters() -> frozenset[str]:
    """The OTIO adapters this installation has (plugins are found through their packages'
    entry points, or ``OTIO_PLUGIN_MANIFEST_PATH``)."""
    return frozenset(str(name) for name in otio.adapters.available_adapter_names())


def reel_names(shot_ids: Sequence[str]) -> list[str]:
    """One reel name per clip, as CMX 3600 allows: 1-8 letters or digits, upper case, unique.

    A reel names the source a clip comes from; two clips on one reel would be conformed from
    the same tape. Built from the shot id (``s01-walk`` -> ``S01WALK``) so that an editor
    recognises it; a name taken already (or one that means black or an auxiliary source)
    ends in a number instead.
    """
    taken: set[str] = set()
    reels: list[str] = []
    for shot_id in shot_ids:
        base = re.sub(r"[^A-Z0-9]", "", shot_id.upper())[:REEL_LENGTH] or "SHOT"
        reel, number = base, 1
        while reel in taken or reel in _RESERVED_REELS:
            number += 1
            suffix = str(number)
            reel = base[:REEL_LENGTH - len(suffix)] + suffix
        taken.add(reel)
        reels.append(reel)
    return reels


def _time(frames: float, rate: float) -> Any:
    return otio.opentime.RationalTime(frames, rate)


def _range(frames: float, rate: float) -> Any:
    return otio.opentime.TimeRange(_time(0, rate), _time(frames, rate))


def build(title: str, shots: Sequence[Clip | Missing], rate: float, folder: Path) -> Timeline:
    """The timeline of ``shots`` (clips of files in ``folder``, gaps of missing shots)."""
    start = otio.opentime.from_timecode(START, rate)
    timeline = otio.schema.Timeline(name=title, global_start_time=start,
                                    metadata={NAMESPACE: {"manifest": title}})
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    clips = [shot for shot in shots if isinstance(shot, Clip)]
    reels = dict(zip((c.chosen.name for c in clips),
                     reel_names([c.chosen.shot_id for c in clips]), strict=True))
    for shot in shots:
        if isinstance(shot, Missing):
            track.append(otio.schema.Gap(
                name=f"{shot.shot_id} (not rendered)",
                source_range=_range(round(shot.seconds * rate), rate),
                metadata={NAMESPACE: gap_metadata(shot)},
            ))
            continue
        name = shot.chosen.name
        length = _range(shot.frames, shot.rate)
        reference = otio.schema.ExternalReference(
            target_url=(folder.absolute() / name).as_uri(), available_range=length)
        reference.name = name
        track.append(otio.schema.Clip(
            name=name, media_reference=reference, source_range=length,
            metadata={
                NAMESPACE: clip_metadata(shot),
                "cmx_3600": {"reel": reels[name]},
                "fcp_xml": {"logginginfo": logging_info(shot)},
            },
        ))
    return timeline


def _edl_copy(timeline: Timeline) -> Timeline:
    """A copy the CMX 3600 writer turns into the EDL editors expect: events from 01:00:00:00
    (the track starts an hour early), each clip's source named by its file name (the EDL
    travels with the clips beside it; a full path would name this machine)."""
    copy = timeline.deepcopy()
    track = copy.tracks[0]
    track.source_range = otio.opentime.TimeRange(-copy.global_start_time, track.duration())
    for clip in track.find_clips():
        clip.media_reference.target_url = clip.name
    return copy


def write(timeline: Timeline, adapter: str) -> str:
    """``timeline`` in the format of OTIO adapter ``adapter``, as text.

    OtioError (or ValueError/TypeError from an adapter) when the adapter cannot express it.
    """
    if adapter == "cmx_3600":
        rate = timeline.global_start_time.rate
        text = otio.adapters.write_to_string(_edl_copy(timeline), adapter, rate=rate)
    else:
        text = otio.adapters.write_to_string(timeline.deepcopy(), adapter)
    log.debug("timeline_written", adapter=adapter, chars=len(text))
    return str(text)


def clip_places(timeline: Timeline) -> list[tuple[str, int, int]]:
    """Per clip of the track, in order: (name, record in, record out) in frames of the
    timeline's rate, counted from 00:00:00:00 (so ``START`` is where the first one begins)."""
    start = timeline.global_start_time
    rate = start.rate
    places: list[tuple[str, int, int]] = []
    for clip in timeline.tracks[0].find_clips():
        where = clip.range_in_parent()
        first = (start + where.start_time).rescaled_to(rate)
        last = (start + where.end_time_exclusive()).rescaled_to(rate)
        places.append((str(clip.name), round(first.value), round(last.value)))
    return places


def timecode(frames: int, rate: float) -> str:
    """``HH:MM:SS:FF`` of ``frames`` at ``rate`` (non-drop for whole rates)."""
    return str(otio.opentime.to_timecode(_time(frames, rate), rate))
