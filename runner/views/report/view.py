"""What the contact sheet shows, gathered from the manifest, the state store and the disk.

The renderer (:mod:`runner.views.report.render`) is a pure function of a :class:`ReportData`; all
the
looking-up happens here: which state record belongs to which take (same shot, take number *and*
fingerprint, so an edited shot is not shown with its old video), where the output is relative to
the page, its poster, its decoded length, and thumbnails of the local inputs. Keeping the two
apart lets the page be tested on hand-made data and the gathering on a real run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from runner.core.model import (
    FrameRef,
    ImageElement,
    LocalFile,
    Manifest,
    Media,
    Take,
    VideoElement,
)
from runner.core.money import CREDITS, Figure, UnitTotal, take_figure, unit_of
from runner.core.money import totals as money_totals
from runner.state.continuity import frame_sources
from runner.state.notes import Note, held_note
from runner.state.records import TakeRecord, TakeStatus
from runner.views.report.pictures import file_data_uri, make_poster, probe_video, thumbnail_data_uri

NOT_RUN = "new"  # the state store's word for a take never submitted


@dataclass(frozen=True, slots=True)
class InputView:
    """One input of a shot: a local image (with a thumbnail), a URL, or another shot's frame."""

    label: str  # "@Image1", "@Element2", "@Element2 ref 1", "start frame", "end frame"
    kind: str  # "local" | "url" | "frame"
    text: str  # file name, URL, or "last frame of s01"
    thumb: str | None = None  # key into ReportData.thumbs
    href: str | None = None  # http(s) URL for kind "url"


@dataclass(frozen=True, slots=True)
class TakeView:
    """One take's tile."""

    key: str
    take: int
    status: str
    task_id: str | None = None
    attempts: int = 0
    credits: float | None = None  # runner.core.money.take_figure: charged, else the estimate
    credits_estimated: bool = False  # True when only the estimate is known
    unit: str = CREDITS  # of ``credits`` (runner.core.money)
    size: int | None = None
    sha256: str | None = None
    duration: float | None = None  # decoded from the output
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    codec: str | None = None  # "h264", with the audio codec: "h264 + aac"
    size_warning: str | None = None  # "960x540 where 1280x720 was expected"
    wall_seconds: float | None = None
    polls: int = 0
    error_code: str | None = None
    error: str | None = None
    video_src: str | None = None  # URL relative to the page
    poster_src: str | None = None  # URL relative to the page
    output_missing: bool = False  # the store names an output that is not on disk
    failure_kind: str | None = None
    progress: int | None = None  # the gateway's percentage while in flight
    reason: str | None = None  # why this render happens (new, prompt changed, ...)
    chosen: bool = False  # the take export ships and from_shot frames come from
    picked: bool = False  # chosen by ``shotrun pick`` (not by default)
    note: str | None = None  # the reviewer's note on this output (``shotrun review``)


@dataclass(frozen=True, slots=True)
class ShotView:
    """A shot (after matrix expansion): its prompt and inputs once, its takes side by side."""

    shot_id: str
    prompts: tuple[tuple[str, int | None], ...]  # (text, segment duration or None)
    inputs: tuple[InputView, ...]
    tags: tuple[str, ...]
    resolution: str
    aspect_ratio: str
    duration: int
    generate_audio: bool
    takes: tuple[TakeView, ...]
    from_shots: tuple[str, ...] = ()  # continuity: the shots whose frames it starts from
    feeds: tuple[str, ...] = ()  # the shots that start from a frame of this one


@dataclass(frozen=True, slots=True)
class Totals:
    """The figures at the top of the page."""

    takes: int
    by_status: Mapping[str, int]
    money: Mapping[str, UnitTotal]  # the takes' figures summed per unit, never across units
    size: int
    video_seconds: float
    unit: str = CREDITS  # the manifest's provider's: shown (as 0) when nothing is priced


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the page shows."""

    title: str
    manifest_path: str
    generated_at: str
    shots: tuple[ShotView, ...]
    thumbs: Mapping[str, str] = field(default_factory=dict)  # id -> data: URI
    state: str = ""  # what the page shows, digested (see runner.views.report.page_state)
    unit: str = CREDITS  # the unit the manifest's provider bills in (runner.core.money)
    standalone: bool = False  # posters inlined: the page can be moved with its videos

    def totals(self) -> Totals:
        takes = [take for shot in self.shots for take in shot.takes]
        return Totals(
            takes=len(takes),
            by_status=dict(Counter(take.status for take in takes)),
            # The same figures as ``status``: charged where known, else the estimate.
            money=money_totals(Figure(take.credits, take.unit, take.credits_estimated)
                               for take in takes),
            size=sum(take.size or 0 for take in takes),
            video_seconds=sum(take.duration or 0.0 for take in takes),
            unit=self.unit,
        )

    def tags(self) -> tuple[str, ...]:
        return tuple(sorted({tag for shot in self.shots for tag in shot.tags}))

    def statuses(self) -> tuple[str, ...]:
        return tuple(sorted({take.status for shot in self.shots for take in shot.takes}))


def relative_url(target: Path, page_dir: Path) -> str:
    """``target`` as a URL relative to a page in ``page_dir`` (works from ``file://``)."""
    rel = os.path.relpath(target, page_dir)
    return "/".join(quote(part) for part in Path(rel).parts)


def wall_seconds(record: TakeRecord) -> float | None:
    """Seconds from submission to the output being saved (or the task finishing)."""
    start = record.submitted_at
    end = record.downloaded_at if record.downloaded_at is not None else record.completed_at
    if start is None or end is None or end < start:
        return None
    return end - start


class _Collector:
    """Builds views for one report; remembers thumbnails so each image is inlined once."""

    def __init__(self, manifest: Manifest, page_dir: Path, posters_dir: Path, *,
                 inline_posters: bool = False) -> None:
        self.manifest = manifest
        self.page_dir = page_dir
        self.posters_dir = posters_dir
        self.inline_posters = inline_posters
        self.thumbs: dict[str, str] = {}
        self._unreadable: set[str] = set()

    def _thumb(self, local: LocalFile) -> str | None:
        key = "t" + (local.sha256 or hashlib.sha256(str(local.path).encode()).hexdigest())[:16]
        if key in self.thumbs:
            return key
        if key in self._unreadable:
            return None
        uri = thumbnail_data_uri(local.path)
        if uri is None:
            self._unreadable.add(key)
            return None
        self.thumbs[key] = uri
        return key

    def _input(self, label: str, media: Media) -> InputView:
        if isinstance(media, LocalFile):
            return InputView(label, "local", media.path.name, thumb=self._thumb(media))
        if isinstance(media, FrameRef):
            frame = media.frame if isinstance(media.frame, str) else f"{media.frame:g} s"
            return InputView(label, "frame", f"{frame} frame of {media.shot_id}")
        href = media if media.startswith(("http://", "https://")) else None
        return InputView(label, "url", media, href=href)

    def inputs(self, take: Take) -> tuple[InputView, ...]:
        request = take.request
        found: list[InputView] = []
        if request.start_frame is not None:
            found.append(self._input("start frame", request.start_frame))
        if request.end_frame is not None:
            found.append(self._input("end frame", request.end_frame))
        for index, image in enumerate(request.images, 1):
            found.append(self._input(f"@Image{index}", image))
        for index, element in enumerate(request.elements, 1):
            if isinstance(element, VideoElement):
                found.append(self._input(f"@Element{index} video", element.video))
            elif isinstance(element, ImageElement):
                found.append(self._input(f"@Element{index}", element.frontal))
                for ref_no, ref in enumerate(element.references, 1):
                    found.append(self._input(f"@Element{index} ref {ref_no}", ref))
        return tuple(found)

    def take_view(self, take: Take, record: TakeRecord | None) -> TakeView:
        if record is None:
            return TakeView(key=take.key, take=take.take, status=NOT_RUN)
        video_src = poster_src = None
        duration = width = height = None
        observed = record.video or {}
        missing = False
        if record.output_path:
            output = Path(record.output_path)
            if not output.is_absolute():
                output = self.manifest.output_dir / output
            if output.is_file():
                video_src = relative_url(output, self.page_dir)
                if record.verified_duration is not None and observed.get("width"):
                    # Verified at download, its facts recorded: no need to decode it again.
                    duration = record.verified_duration
                    width, height = observed["width"], observed["height"]
                else:
                    facts = probe_video(output)
                    duration, width, height = facts.duration, facts.width, facts.height
                name = record.sha256 or hashlib.sha256(str(output).encode()).hexdigest()
                poster = make_poster(output, self.posters_dir, name[:32], duration)
                if poster is not None and self.inline_posters:
                    poster_src = file_data_uri(poster)  # None: the tile shows no poster
                elif poster is not None:
                    poster_src = relative_url(poster, self.page_dir)
            else:
                missing = True
        figure = take_figure(record.credits_reserved, record.credits_estimated,
                             record.unit or unit_of(self.manifest.api.provider))
        return TakeView(
            key=take.key,
            take=take.take,
            status=record.status,
            task_id=record.task_id,
            attempts=record.attempts,
            credits=figure.amount,
            credits_estimated=figure.estimated,
            unit=figure.unit,
            size=record.size,
            sha256=record.sha256,
            duration=duration,
            width=width,
            height=height,
            fps=observed.get("fps"),
            codec=" + ".join(c for c in (observed.get("codec"), observed.get("audio_codec"))
                             if c) or None,
            size_warning=observed.get("size_warning") if record.status == TakeStatus.DONE else None,
            wall_seconds=wall_seconds(record),
            polls=record.polls,
            error_code=record.last_error_code,
            error=record.last_error,
            video_src=video_src,
            poster_src=poster_src,
            output_missing=missing,
            failure_kind=record.failure_kind,
            progress=record.progress,
            reason=record.reason,
        )


def _with_note(view: TakeView, notes: Mapping[str, Note]) -> TakeView:
    """``view`` with the reviewer's note on it, when the note is about the output it shows."""
    text = held_note(notes, view.key, view.sha256)
    return view if text is None else replace(view, note=text)


def _prompts(take: Take) -> tuple[tuple[str, int | None], ...]:
    request = take.request
    if request.multi_prompt:
        return tuple((segment.prompt, segment.duration) for segment in request.multi_prompt)
    return ((request.prompt or "", None),)


def collect(
    manifest: Manifest,
    records: Iterable[TakeRecord],
    *,
    chosen: Mapping[str, tuple[int, bool]] | None = None,
    page_dir: Path | None = None,
    posters_dir: Path | None = None,
    now: dt.datetime | None = None,
    notes: Mapping[str, Note] | None = None,
    standalone: bool = False,
) -> ReportData:
    """Gather the report of ``manifest`` from its state ``records`` and its outputs on disk.

    A record belongs to a take when shot, take number and fingerprint all match: after a shot is
    edited its old output is not shown as the new take's result. ``chosen`` (shot id -> the
    chosen take's number and whether it was picked, from
    :func:`runner.state.continuity.chosen_takes`) marks tiles; chains come from the
    manifest's ``from_shot`` frames. ``notes`` (the store's, by take key) are shown on the
    tiles whose output is the one they were written about. ``standalone``: posters are
    inlined as ``data:`` URIs (the page no longer needs the private ``.shotrun/`` folder),
    and the page says how it can be moved.
    """
    page_dir = page_dir or manifest.output_dir
    posters_dir = posters_dir or manifest.output_dir / ".shotrun" / "posters"
    by_take: dict[tuple[str, int, str], TakeRecord] = {
        (record.shot_id, record.take, record.fingerprint): record for record in records
    }
    collector = _Collector(manifest, page_dir, posters_dir, inline_posters=standalone)
    shots: dict[str, list[Take]] = {}
    for take in manifest.takes:
        shots.setdefault(take.shot_id, []).append(take)
    sources = {shot_id: frame_sources(takes[0]) for shot_id, takes in shots.items()}
    feeds: dict[str, list[str]] = {}
    for shot_id, found in sources.items():
        for source in found:
            feeds.setdefault(source, []).append(shot_id)
    views: list[ShotView] = []
    for shot_id, takes in shots.items():
        first = takes[0]
        request = first.request
        take_views: Sequence[TakeView] = [
            collector.take_view(take, by_take.get((take.shot_id, take.take, take.fingerprint)))
            for take in sorted(takes, key=lambda t: t.take)
        ]
        number, picked = (chosen or {}).get(shot_id, (0, False))
        take_views = [replace(view, chosen=True, picked=picked)
                      if view.take == number and view.status == TakeStatus.DONE else view
                      for view in take_views]
        if notes:
            take_views = [_with_note(view, notes) for view in take_views]
        views.append(
            ShotView(
                shot_id=shot_id,
                prompts=_prompts(first),
                inputs=collector.inputs(first),
                tags=first.tags,
                resolution=request.resolution,
                aspect_ratio=request.aspect_ratio,
                duration=request.duration,
                generate_audio=request.generate_audio,
                takes=tuple(take_views),
                from_shots=sources[shot_id],
                feeds=tuple(feeds.get(shot_id, ())),
            )
        )
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return ReportData(
        title=manifest.name,
        manifest_path=str(manifest.path),
        generated_at=stamp,
        shots=tuple(views),
        thumbs=dict(collector.thumbs),
        unit=unit_of(manifest.api.provider),
        standalone=standalone,
    )
