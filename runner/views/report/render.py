"""The contact sheet as one self-contained HTML page: a pure function of :class:`ReportData`.

Every text that comes from the manifest or the gateway (ids, prompts, tags, file names, task
ids, error messages) goes through :func:`html.escape` right where it is written, and nothing of
theirs is ever placed inside ``<style>`` or ``<script>``. The page loads nothing from the
network: its style and script are inline, thumbnails are ``data:`` URIs, and videos and posters
are relative paths next to the page, so it works from ``file://`` on a plane.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from html import escape

from runner.core.money import Figure, UnitTotal, format_amount, unit_word
from runner.state.records import TakeStatus
from runner.views.report.static import CSS, JS, script_hash
from runner.views.report.view import NOT_RUN, InputView, ReportData, ShotView, TakeView, Totals

# @Image3, @Element1, or a name that was not rewritten (@hero): highlighted in prompts.
_REF = re.compile(r"@(?:(Image|Element)(\d+)\b|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)")
_STATUS_ORDER = (
    "done", "failed", "ambiguous", "held", "downloading", "completed", "submitted", "submitting",
    NOT_RUN,
)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def status_label(status: str) -> str:
    return status.replace("_", " ")


def _css_token(value: str) -> str:
    """A class-name-safe form of a status (statuses are ours, but never trust a string)."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())


def human_size(size: int | None) -> str:
    if size is None:
        return "–"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def highlight_prompt(text: str, names: dict[str, str]) -> str:
    """Escaped ``text`` with every ``@reference`` wrapped in ``<mark>``.

    ``names`` maps a reference (``@Image1``) to what it points at, shown as a tooltip.
    """
    out: list[str] = []
    last = 0
    for match in _REF.finditer(text):
        out.append(_e(text[last : match.start()]))
        ref = match.group(0)
        kind = (match.group(1) or "other").lower()
        title = names.get(ref)
        title_attr = f' title="{_e(title)}"' if title else ""
        out.append(f'<mark class="ref {kind}"{title_attr}>{_e(ref)}</mark>')
        last = match.end()
    out.append(_e(text[last:]))
    return "".join(out)


def _ordered_statuses(statuses: tuple[str, ...]) -> list[str]:
    known = [status for status in _STATUS_ORDER if status in statuses]
    return known + sorted(status for status in statuses if status not in _STATUS_ORDER)


def totals_html(totals: Totals) -> str:
    cells = [(str(totals.takes), "takes")]
    for status in _ordered_statuses(tuple(totals.by_status)):
        cells.append((str(totals.by_status[status]), status_label(status)))
    notes: dict[str, str] = {}
    for unit, total in (totals.money or {totals.unit: UnitTotal()}).items():
        label = unit_word(unit)
        cells.append((format_amount(round(total.total, 6), unit, bare=True, short=True), label))
        if total.estimated:  # what the provider did not say: shotrun's estimate
            notes[label] = ("estimate" if not total.charged else
                            f"of which ~{format_amount(round(total.estimated, 6), unit)} "
                            "estimated")
    cells += [
        (human_size(totals.size), "on disk"),
        (human_seconds(totals.video_seconds), "of video"),
    ]
    body = "".join(
        f'<div class="total" data-total="{_e(label)}"><b>{_e(value)}</b>'
        f"<span>{_e(label)}</span>"
        + (f'<small class="estimate">{_e(notes[label])}</small>' if label in notes else "")
        + "</div>"
        for value, label in cells
    )
    return f'<div class="totals">{body}</div>'


def filters_html(statuses: Iterable[str], tags: Iterable[str], showing: str) -> str:
    """The status and tag filters (every status checked) and the count shown: the report's
    and the live review page's, which the same script (report.js) drives."""
    parts = ['<div class="filters"><span class="group">status</span>']
    for status in _ordered_statuses(tuple(statuses)):
        parts.append(
            f'<label><input type="checkbox" data-kind="status" value="{_e(status)}" checked>'
            f"{_e(status_label(status))}</label>"
        )
    tags = tuple(tags)
    if tags:
        parts.append('<span class="group">tags</span>')
        parts += [f'<label><input type="checkbox" data-kind="tag" value="{_e(tag)}">'
                  f"{_e(tag)}</label>" for tag in tags]
    parts.append(f'<span class="group">showing {showing}</span></div>')
    return "".join(parts)


def _filters(data: ReportData) -> str:
    total = sum(len(shot.takes) for shot in data.shots)
    return filters_html(data.statuses(), data.tags(), f'<b id="shown">{total}</b> of {total}')


def _input(item: InputView) -> str:
    if item.thumb:
        picture = f'<span class="thumb {_e(item.thumb)}" role="img" aria-label="{_e(item.text)}">'
        picture += "</span>"
    else:
        picture = f'<span class="thumb">{_e(item.kind)}</span>'
    if item.href:
        text = f'<a href="{_e(item.href)}" rel="noopener noreferrer">{_e(item.text)}</a>'
    else:
        text = _e(item.text)
    return (
        f'<div class="input" data-kind="{_e(item.kind)}">{picture}'
        f'<span class="label">{_e(item.label)}</span><span>{text}</span></div>'
    )


def _fact(name: str, value: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f"<dt>{_e(name)}</dt><dd{cls}>{value}</dd>"


# Extra HTML at the end of a tile (``shotrun review``'s buttons), made by the caller.
Controls = Callable[[ShotView, TakeView], str]


def _tile(shot: ShotView, take: TakeView, controls: Controls | None = None) -> str:
    status = _css_token(take.status)
    ratio = "r" + shot.aspect_ratio.replace(":", "x")
    if take.video_src:
        poster = f' poster="{_e(take.poster_src)}"' if take.poster_src else ""
        frame = (
            f'<video controls preload="metadata" src="{_e(take.video_src)}"{poster} '
            f'aria-label="{_e(take.key)}"></video>'
        )
    else:
        why = "output missing on disk" if take.output_missing else status_label(take.status)
        frame = f'<div class="none">{_e(why)}</div>'
    status_text = status_label(take.status)
    if take.failure_kind and take.status == TakeStatus.FAILED:
        status_text += f" ({take.failure_kind})"
    elif take.progress is not None and take.status in (TakeStatus.SUBMITTED, TakeStatus.COMPLETED):
        status_text += f" · {take.progress}%"
    facts = [_fact("status", _e(status_text), "status")]
    if take.reason and take.reason not in ("new", "done"):  # only a reason worth reading
        facts.append(_fact("why", _e(take.reason)))
    if take.task_id:
        facts.append(_fact("task", _e(take.task_id)))
    if take.duration is not None or take.width:
        size = f" · {take.width}×{take.height}" if take.width else ""
        rate = f" · {take.fps:g} fps" if take.fps else ""
        facts.append(_fact("duration", _e(human_seconds(take.duration) + size + rate)))
    if take.codec:
        facts.append(_fact("codec", _e(take.codec)))
    if take.size_warning:  # recorded, not refused: the gateway documents no pixel size
        facts.append(_fact("warning", _e(f"size {take.size_warning}"), "warn"))
    if take.size is not None:
        facts.append(_fact("size", _e(human_size(take.size))))
    if take.credits is not None:
        figure = Figure(take.credits, take.unit, take.credits_estimated)
        facts.append(_fact("cost", _e(figure.text())))
    if take.status != NOT_RUN:
        facts.append(_fact("attempts", _e(take.attempts)))
        facts.append(_fact("polls", _e(take.polls)))
    if take.wall_seconds is not None:
        facts.append(_fact("wall", _e(human_seconds(take.wall_seconds))))
    if take.error or take.error_code:
        text = ": ".join(part for part in (take.error_code, take.error) if part)
        facts.append(_fact("error", _e(text), "error"))
    if take.note:
        facts.append(_fact("note", _e(take.note), "note"))
    chosen = " chosen" if take.chosen else ""
    chosen += " picked" if take.picked else ""
    badge = ('<span class="badge picked" title="chosen with shotrun pick">picked</span>'
             if take.picked else
             '<span class="badge" title="the first finished take: export ships it">chosen'
             '</span>' if take.chosen else "")
    return (
        f'<article class="tile s-{status}{chosen}" data-status="{_e(take.status)}" '
        f'data-key="{_e(take.key)}" id="take-{_e(take.key)}">'
        f'<div class="frame {ratio}">{frame}</div>'
        f'<h3 class="take-no">take {take.take}{badge}</h3>'
        f'<dl class="facts">{"".join(facts)}</dl>'
        f'{controls(shot, take) if controls else ""}</article>'
    )


def shot_html(shot: ShotView, controls: Controls | None = None) -> str:
    """One shot's section: its prompt and inputs once, then its tiles (with ``controls``)."""
    names = {item.label: item.text for item in shot.inputs if item.label.startswith("@")}
    chips = [shot.resolution, shot.aspect_ratio, f"{shot.duration} s"]
    if shot.generate_audio:
        chips.append("audio")
    chip_html = "".join(f'<span class="chip">{_e(chip)}</span>' for chip in chips)
    chip_html += "".join(f'<span class="chip tag">{_e(tag)}</span>' for tag in shot.tags)
    prompts = []
    for text, seconds in shot.prompts:
        seg = f'<span class="seg">{seconds} s</span>' if seconds is not None else ""
        prompts.append(f'<div class="prompt">{seg}{highlight_prompt(text, names)}</div>')
    inputs = "".join(_input(item) for item in shot.inputs)
    inputs_html = f'<div class="inputs">{inputs}</div>' if inputs else ""
    tiles = "".join(_tile(shot, take, controls) for take in shot.takes)
    links = []
    if shot.from_shots:
        links.append("starts from " + ", ".join(
            f'<a href="#shot-{_e(s)}">{_e(s)}</a>' for s in shot.from_shots))
    if shot.feeds:
        links.append("feeds " + ", ".join(
            f'<a href="#shot-{_e(s)}">{_e(s)}</a>' for s in shot.feeds))
    chain = f'<div class="chain">{" · ".join(links)}</div>' if links else ""
    return (
        f'<section class="shot" id="shot-{_e(shot.shot_id)}" data-tags="'
        f'{_e(json.dumps(list(shot.tags)))}"><h2>{_e(shot.shot_id)}</h2>'
        f'<div class="chips">{chip_html}</div>{chain}{"".join(prompts)}{inputs_html}'
        f'<div class="takes">{tiles}</div></section>'
    )


def _thumb_css(data: ReportData) -> str:
    # Keys are "t" + hex digits and values base64 data: URIs (made by us, never user text).
    return "".join(
        f'.thumb.{key}{{background-image:url("{uri}")}}' for key, uri in sorted(data.thumbs.items())
    )


STATE_META = "shotrun-state"
_STATE = re.compile(rf'<meta name="{STATE_META}" content="([0-9a-f]+)">')


def _state_meta(state: str) -> str:
    # Hex digits only (made by us), near the top: a reader finds it in the first few bytes.
    return f'<meta name="{STATE_META}" content="{state}">' if _STATE_HEX.fullmatch(state) else ""


_STATE_HEX = re.compile(r"[0-9a-f]{8,64}")


def state_of_page(head: str) -> str | None:
    """The state digest a page was written with (from its first bytes), if it has one."""
    match = _STATE.search(head)
    return match.group(1) if match else None


STANDALONE_NOTE = (
    "Stand-alone page: the posters are inside it; the videos are the files next to it, "
    "referred to by their paths relative to this page (such as {example}). Move or mail it "
    "with those folders to play them; alone, it shows the stills."
)
FOLDER_NOTE = (
    "This page shows posters kept in .shotrun/posters/ beside it and works where it is; "
    "`shotrun report --standalone` (spends nothing) writes a page that can be moved or mailed."
)


def _portability(data: ReportData) -> str:
    """What the page needs around it: said on the page, so whoever receives it knows."""
    if not data.standalone:
        return f'<div class="meta folder">{_e(FOLDER_NOTE)}</div>'
    example = next((take.video_src for shot in data.shots for take in shot.takes
                    if take.video_src), "SHOT/take-1.mp4")
    return f'<div class="meta standalone">{_e(STANDALONE_NOTE.format(example=example))}</div>'


def render_html(data: ReportData) -> str:
    """The whole page."""
    csp = (
        "default-src 'none'; img-src 'self' data: file:; media-src 'self' file:; "
        f"style-src 'unsafe-inline'; script-src {script_hash()}; base-uri 'none'; "
        "form-action 'none'"
    )
    body = "".join(shot_html(shot) for shot in data.shots) or (
        '<p class="empty">This manifest has no takes.</p>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"{_state_meta(data.state)}"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="shotrun">'
        f"<title>{_e(data.title)} · shotrun report</title>"
        f"<style>{CSS}{_thumb_css(data)}</style></head><body>"
        f"<header><h1>{_e(data.title)}</h1>"
        f'<div class="meta">{_e(data.manifest_path)} · generated {_e(data.generated_at)}</div>'
        f"{_portability(data)}{totals_html(data.totals())}{_filters(data)}</header>"
        f"<main>{body}</main><script>{JS}</script></body></html>\n"
    )
