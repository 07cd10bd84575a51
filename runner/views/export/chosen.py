"""The chosen files as they really are: still the verified bytes, and their length in frames.

An edit list that says a clip is 3 s when its file holds 71 frames makes an NLE either
refuse the event or show a black frame at the cut. So every clip's length is the file's own
(the video stream's duration and frame rate), never taken from the request. Every file is
checked (present, same SHA-256 as when it was verified) *before* anything is written, so an
export refused for one damaged file leaves the folder as it was.

The length and rate are those the run measured when it verified the file, recorded with the
take (:func:`runner.media.observed.video_length`): the SHA-256 check says these are the very bytes
that were measured, so opening every file with PyAV again would only repeat it. A take whose
facts lack either (verified by an older shotrun) is measured from its file
(:func:`runner.media.verify.probe`), as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from runner.core.errors import VerifyError
from runner.core.fsutil import hash_file
from runner.media.observed import video_length
from runner.views.export.select import Chosen, ExportError

log = structlog.get_logger()

DEFAULT_RATE = 24.0  # the timeline's rate when there is no clip to take one from


@dataclass(frozen=True, slots=True)
class Clip:
    """A chosen take whose file was checked and measured."""

    chosen: Chosen
    source: Path  # the take's output in the render folder
    frames: int  # length of its video, in its own frames
    rate: float  # its frame rate

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def standard_rate(value: float | None) -> float | None:
    """A probed rate, rounded so that 24.000000001 from a time base is 24 (and 23.976 stays
    24000/1001, what an NLE calls 23.976)."""
    if not value or value <= 0:
        return None
    whole = round(value)
    if abs(value - whole) < 1e-3:
        return float(whole)
    ntsc = whole * 1000 / 1001
    return ntsc if abs(value - ntsc) < 1e-3 else value


def measure(chosen: Chosen) -> Clip:
    """Check ``chosen``'s output and read its length and rate; ExportError says what is wrong."""
    record = chosen.record
    source = Path(record.output_path or "")
    what = f"{chosen.shot_id}: take {record.take}'s output {source}"
    if not source.is_file():
        raise ExportError(f"{what} is missing; run the manifest again to render it")
    try:
        digest = hash_file(source)[0]
    except OSError as exc:
        raise ExportError(f"{what} cannot be read ({exc.strerror or exc})") from None
    if digest != record.sha256:
        raise ExportError(f"{chosen.shot_id}: {source} changed on disk since it was "
                          "verified; run the manifest again or restore the file")
    recorded = video_length(record.video)
    fps, seconds = recorded or _read_length(source, chosen.shot_id)
    rate = standard_rate(fps)
    if rate is None:
        raise ExportError(f"{what} has no frame rate; it cannot be placed on a timeline")
    frames = max(1, round(seconds * rate))
    log.debug("clip_measured", shot=chosen.shot_id, take=record.take, frames=frames, rate=rate,
              read="store" if recorded else "file")
    return Clip(chosen=chosen, source=source, frames=frames, rate=rate)


def _read_length(source: Path, shot_id: str) -> tuple[float | None, float]:
    """``(fps, seconds of video)`` read from the file itself (its facts were not recorded)."""
    from runner.media.verify import probe  # PyAV: loaded only when a file must be opened

    try:
        info = probe(source)
    except VerifyError as exc:
        raise ExportError(f"{shot_id}: {exc}") from None
    return info.fps, info.video_duration


def timeline_rate(clips: Sequence[Clip]) -> float:
    """The rate most clips have (the first clip's on a tie): the timeline runs at a rate its
    files really have, so their cuts fall on whole frames."""
    if not clips:
        return DEFAULT_RATE
    counts = Counter(clip.rate for clip in clips)
    best = max(counts.values())
    return next(clip.rate for clip in clips if counts[clip.rate] == best)
