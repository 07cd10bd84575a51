"""What the review page shows: the report's view model and tiles, plus review's controls.

The page is the contact sheet of :mod:`runner.views.report` (the same
:func:`runner.views.report.collect`
gathers it, the same :func:`runner.views.report.render.shot_html` draws each shot), with, per tile,
a pick button, a note box and what the next run would do with the take, in ``plan``'s own
words (:func:`runner.views.outlook.read_store`: a take a new pick made stale shows "will run ·
source changed", as ``plan`` says it). Everything from the manifest, the store and the
gateway is escaped where it is written (the report's rule); nothing of theirs is placed in
the page's script or style.

:func:`build` reads the store read-only (beside a live run, like ``status``) and returns a
:class:`Snapshot`: the live part of the header and one HTML section per shot, which the server
diffs from one snapshot to the next and sends to the page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import structlog

from runner.core.errors import StateError
from runner.core.model import Manifest
from runner.state import TakeAction, TakeStatus
from runner.state.continuity import chosen_takes
from runner.state.location import store_at
from runner.state.notes import MAX_NOTE
from runner.views.outlook import PlanStatus, read_store
from runner.views.report import collect
from runner.views.report.render import (
    Controls,
    filters_html,
    shot_html,
    totals_html,
)
from runner.views.report.view import ReportData, ShotView, TakeView
from runner.views.review.pending import Failed, Wish

log = structlog.get_logger()

# What plan says of a done take that a run would render again ("will run", "will retry").
RERENDER_ACTIONS = (TakeAction.SUBMIT, TakeAction.RETRY)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One state of the page: its live header and its sections (shot id -> HTML), in order."""

    live: str
    sections: Mapping[str, str]
    thumbs_css: str
    rerender: Mapping[str, PlanStatus]  # done takes a next run renders again, as plan says
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            text = json.dumps([self.live, list(self.sections.items())])
            object.__setattr__(self, "digest", hashlib.sha256(text.encode()).hexdigest()[:24])


@dataclass(frozen=True, slots=True)
class Situation:
    """What review itself adds to the store's state: the run holding the store, and the picks
    and notes waiting for it (:mod:`runner.views.review.pending`)."""

    running_pid: int | None = None
    waiting: Sequence[Wish] = ()
    failed: Sequence[Failed] = ()


def media_url(src: str | None, token: str) -> str | None:
    """A path relative to the output folder as the server serves it (``/files/...``)."""
    return None if src is None else f"/files/{src}?token={token}"


def _controls(rerender: Mapping[str, PlanStatus], situation: Situation) -> Controls:
    """Review's part of each tile: pick, what the next run does with it, the note."""
    waiting_picks = {w.target: w.take for w in situation.waiting if w.kind == "pick"}
    waiting_notes = {w.target: w.text for w in situation.waiting if w.kind == "note"}

    def controls(shot: ShotView, take: TakeView) -> str:
        parts = ['<div class="review">']
        if take.picked:
            parts.append('<span class="mark picked-mark">picked</span>')
        elif take.status == TakeStatus.DONE.value and take.video_src:
            parts.append(f'<button type="button" class="pick" data-shot="{_e(shot.shot_id)}" '
                         f'data-take="{take.take}" title="choose this take (key {take.take})">'
                         f"pick take {take.take}</button>")
        if waiting_picks.get(shot.shot_id) == take.take:
            parts.append('<span class="mark queued">pick waiting for the run</span>')
        status = rerender.get(take.key)
        if status is not None:
            parts.append(f'<div class="next" data-next="{_e(status.state)}" '
                         f'data-reason="{_e(status.reason)}">next run: {_e(status.state)}'
                         f' · {_e(status.reason)}</div>')
        text = waiting_notes.get(take.key, take.note or "")
        waiting = " queued" if take.key in waiting_notes else ""
        parts.append(f'<textarea class="note-edit{waiting}" data-key="{_e(take.key)}" rows="2" '
                     f'maxlength="{MAX_NOTE}" placeholder="a note on this take" '
                     f'aria-label="note on {_e(take.key)}">{_e(text)}</textarea>'
                     f'<button type="button" class="save-note" data-key="{_e(take.key)}">'
                     "save note</button>")
        if waiting:
            parts.append('<span class="mark queued">note waiting for the run</span>')
        parts.append("</div>")
        return "".join(parts)

    return controls


def _live(data: ReportData, situation: Situation) -> str:
    parts = []
    if situation.running_pid is not None:
        parts.append(f'<p class="banner run" data-pid="{situation.running_pid}">a run is in '
                     f"progress (pid {situation.running_pid}): picks and notes are saved when "
                     "it ends</p>")
    if situation.waiting:
        items = "; ".join(_e(wish.describe()) for wish in situation.waiting)
        parts.append(f'<p class="banner queued">waiting for the store: {items}</p>')
    for failed in situation.failed:
        parts.append(f'<p class="banner failed">not saved: {_e(failed.wish.describe())}: '
                     f"{_e(failed.reason)}</p>")
    parts.append(totals_html(data.totals()))
    return "".join(parts)


def page_filters(manifest: Manifest) -> str:
    """Status and tag filters: every status (a run makes them appear), the manifest's tags."""
    return filters_html((s.value for s in TakeStatus),
                        sorted({tag for take in manifest.takes for tag in take.tags}),
                        '<b id="shown">0</b>')


def _with_urls(shot: ShotView, token: str) -> ShotView:
    takes = tuple(dataclasses.replace(take, video_src=media_url(take.video_src, token),
                                      poster_src=media_url(take.poster_src, token))
                  for take in shot.takes)
    return dataclasses.replace(shot, takes=takes)


def _thumbs_css(data: ReportData) -> str:
    # Keys are "t" + hex digits, values base64 data: URIs, both made by the report's collector.
    return "".join(f'.thumb.{key}{{background-image:url("{uri}")}}'
                   for key, uri in sorted(data.thumbs.items()))


def build(manifest: Manifest, token: str, situation: Situation) -> Snapshot:
    """The page's state now: the store read-only (no store yet: every take new)."""
    at = store_at(manifest)
    rerender: dict[str, PlanStatus] = {}
    data: ReportData
    if at.exists():
        with at.open_reader() as store:
            found = store.records()
            fingerprints = {take.key: take.fingerprint for take in manifest.takes}
            chosen = chosen_takes(found, store.picks(), fingerprints)
            data = collect(manifest, found, chosen=chosen, page_dir=manifest.output_dir,
                           notes=store.notes())
        view = read_store(manifest)  # plan's own answer: what a run would do with each take
        done = {record.key for record in found if record.status is TakeStatus.DONE}
        if view is not None:
            rerender = {key: status for key, status in view.statuses.items()
                        if key in done and status.action in RERENDER_ACTIONS}
    else:
        data = collect(manifest, [], chosen={}, page_dir=manifest.output_dir)
    controls = _controls(rerender, situation)
    sections = {shot.shot_id: shot_html(_with_urls(shot, token), controls)
                for shot in data.shots}
    log.debug("review_page_built", shots=len(sections))
    return Snapshot(_live(data, situation), sections, _thumbs_css(data), rerender)


def safe_build(manifest: Manifest, token: str, situation: Situation,
               previous: Snapshot | None) -> Snapshot | None:
    """:func:`build`, or ``previous`` while the store cannot be read (a run creating it)."""
    try:
        return build(manifest, token, situation)
    except StateError as exc:
        log.info("review_store_unreadable", error=str(exc))
        return previous


def page_html(manifest: Manifest, snapshot: Snapshot, version: int, token: str) -> str:
    """The whole page (its script and style are served by the server, as files)."""
    body = "".join(snapshot.sections.values()) or (
        '<p class="empty">This manifest has no takes.</p>')
    path = Path(manifest.path)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="shotrun review">'
        f"<title>{_e(manifest.name)} · shotrun review</title>"
        '<link rel="icon" href="/favicon.ico" type="image/svg+xml">'
        f'<link rel="stylesheet" href="/static/review.css?token={token}"></head>'
        f'<body data-version="{version}"><header><h1>{_e(manifest.name)}</h1>'
        f'<div class="meta">{_e(path)} · review (live)</div>'
        f'<div id="live">{snapshot.live}</div>{page_filters(manifest)}'
        '<div class="keys">keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous shot · '
        "<kbd>h</kbd>/<kbd>l</kbd> take · <kbd>space</kbd> play · <kbd>1</kbd>-<kbd>9</kbd> "
        "pick · <kbd>n</kbd> note (<kbd>ctrl</kbd>+<kbd>enter</kbd> saves)</div>"
        '<div id="message" role="status" aria-live="polite"></div></header>'
        f"<main>{body}</main>"
        f'<script src="/static/report.js?token={token}"></script>'
        f'<script src="/static/review.js?token={token}"></script></body></html>\n'
    )
