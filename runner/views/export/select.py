"""What an export holds: per shot of the manifest, in order, its chosen take or a hole.

``nn`` in ``<nn>-<shot-id>.mp4`` is the shot's position in the manifest, not among exported
shots, so a shot that is not rendered yet leaves a hole (a gap on the timeline) instead of
renumbering, and shifting, everything after it. Choosing reads the store only (no file is
opened here): :mod:`runner.views.export.chosen` then checks and measures the chosen files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runner.core.model import Manifest, Take
from runner.state.continuity import Pick, chosen_records, frame_sources
from runner.state.records import TakeRecord


class ExportError(Exception):
    """An export that cannot be made as asked (the message says what to do)."""


@dataclass(frozen=True, slots=True)
class Chosen:
    """A shot whose chosen take is finished: it becomes a clip."""

    index: int  # 1-based position of the shot in the manifest
    name: str  # file name in the export folder, ``<nn>-<shot-id>.mp4``
    take: Take  # the manifest's take (prompt after reference renaming, tags, sources)
    record: TakeRecord  # the store's (task id, credits, output, SHA-256)
    picked: bool  # the user picked it (else it is the first finished)
    sources: tuple[tuple[str, str | None], ...]  # (from_shot id, SHA-256 it was cut from)

    @property
    def shot_id(self) -> str:
        return self.take.shot_id


@dataclass(frozen=True, slots=True)
class Missing:
    """A shot with no finished take: a gap of the length it was asked for."""

    index: int
    shot_id: str
    seconds: float  # the requested duration


@dataclass(frozen=True, slots=True)
class Selection:
    """Every shot of the manifest, in order: chosen (a clip) or missing (a gap)."""

    shots: tuple[Chosen | Missing, ...]

    @property
    def chosen(self) -> tuple[Chosen, ...]:
        return tuple(shot for shot in self.shots if isinstance(shot, Chosen))

    @property
    def missing(self) -> tuple[str, ...]:
        """Shot ids with no finished take, in manifest order."""
        return tuple(shot.shot_id for shot in self.shots if isinstance(shot, Missing))


def first_takes(takes: Sequence[Take]) -> list[Take]:
    """The first take of each shot, in manifest order (a shot's takes share its request)."""
    seen: dict[str, Take] = {}
    for take in takes:
        seen.setdefault(take.shot_id, take)
    return list(seen.values())


def select(manifest: Manifest, records: Sequence[TakeRecord], picks: Mapping[str, Pick],
           frame_hashes: Mapping[str, Mapping[str, str]]) -> Selection:
    """The chosen take of every shot of ``manifest`` (picked, else the first finished).

    ``frame_hashes`` (take key -> source shot -> SHA-256, from the store) says which output of
    each ``from_shot`` source a take was really cut from: provenance an editor can check.
    """
    shots = first_takes(manifest.takes)
    width = max(2, len(str(len(shots))))
    takes = {take.key: take for take in manifest.takes}
    # A record of an older fingerprint is not this manifest's take any more.
    chosen = chosen_records(records, picks, {key: take.fingerprint
                                              for key, take in takes.items()})
    found: list[Chosen | Missing] = []
    for index, first in enumerate(shots, start=1):
        best, picked = chosen.get(first.shot_id, (None, False))
        if best is None or not best.output_path or not best.sha256:
            found.append(Missing(index, first.shot_id, float(first.request.duration)))
            continue
        take = takes[best.key]
        used = frame_hashes.get(best.key, {})
        found.append(Chosen(
            index=index, name=f"{index:0{width}d}-{first.shot_id}.mp4", take=take,
            record=best, picked=picked,
            sources=tuple((shot, used.get(shot)) for shot in frame_sources(take)),
        ))
    return Selection(tuple(found))
