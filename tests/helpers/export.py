"""Reading an export back the way an editor's tools would: through OpenTimelineIO itself.

Every exported edit list is parsed again with OTIO's own readers (``.otio``, the CMX 3600 and
FCP XML adapters) and reduced to plain values: what lands where on the timeline, in frames,
and the metadata each clip carries. The tests compare that with the store and the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import opentimelineio as otio
from PIL import Image

from tests.helpers import pick_export as continuity
from tests.helpers.pick_export import run, sha

RATE = 24  # the emulator's videos are 24 fps
__all__ = ["RATE", "Placed", "expected_places", "frame_count", "plain", "read_back", "run",
           "sha", "write_manifest"]


def write_manifest(root: Path, shots: str) -> Path:
    """A manifest on the built-in emulator (real H.264 videos, tiny times) with an image."""
    Image.new("RGB", (1280, 720), (30, 120, 200)).save(root / "coast.png")
    return continuity.write_manifest(root, shots, assets="assets: {coast: coast.png}\n")


def plain(value: Any) -> Any:
    """OTIO's metadata containers (AnyDictionary, AnyVector) as dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    return [plain(v) for v in value]


@dataclass(frozen=True)
class Placed:
    """One clip of a timeline read back: where it is, in frames from 00:00:00:00."""

    name: str
    record_in: int
    frames: int
    target_url: str
    metadata: dict[str, Any]


def read_back(path: Path) -> tuple[Any, list[Placed]]:
    """The timeline in ``path`` (any format OTIO reads) and its clips, placed."""
    timeline = otio.adapters.read_from_file(str(path))
    tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    assert len(tracks) == 1, f"{path.name}: {len(tracks)} video tracks"
    track = tracks[0]
    # An EDL has no sequence start: its reader starts the track at the first record in.
    origin = (timeline.global_start_time if timeline.global_start_time is not None
              else -track.source_range.start_time)
    placed = []
    for clip in track.find_clips():
        where = clip.range_in_parent()
        start = (origin + where.start_time).rescaled_to(RATE)
        placed.append(Placed(
            name=str(clip.name), record_in=round(start.value),
            frames=round(where.duration.rescaled_to(RATE).value),
            target_url=str(getattr(clip.media_reference, "target_url", "")),
            metadata=plain(clip.metadata),
        ))
    return timeline, placed


def frame_count(path: Path) -> int:
    """Frames of ``path``'s video, by decoding every one (not by trusting an index)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def expected_places(lengths: Sequence[tuple[str | None, int]]) -> list[tuple[str, int, int]]:
    """(name, record in, frames) of each clip when ``lengths`` (name, or None for a gap, and
    frames) are laid back to back from 01:00:00:00."""
    position = 3600 * RATE
    out = []
    for name, frames in lengths:
        if name is not None:
            out.append((name, position, frames))
        position += frames
    return out
