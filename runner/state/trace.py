"""One trace record per take: the stable, documented shape scripts and spreadsheets read.

``shotrun status --json`` prints these (and ``report --csv`` can write the same fields). The
field names are a public interface, documented in the README: add fields, never rename them.

=============== =====================================================================
field           meaning
=============== =====================================================================
id              the take's key, ``<shot-id>/take-<n>``
shot            shot id (after matrix expansion)
take            take number, 1-based
status          new, submitting, ambiguous, held, submitted, completed, downloading,
                done, failed
task_id         the gateway's task id of the current attempt, or null
submitted       when the task id arrived (ISO 8601 UTC), or null
completed       when the gateway reported the task completed, or null
downloaded      when the verified output was saved, or null
wall_seconds    seconds from ``submitted`` to ``downloaded``, null until downloaded
polls           status queries of the task
credits         what the take costs in ``unit``: what the provider charged, else the
                estimate (``estimate`` true), or null (runner.core.money.take_figure)
output          the video's path relative to the output directory, or null
sha256          SHA-256 (hex) of the saved video, or null
error           the last error message, null once done
attempts        creation requests that may have reached the gateway
failure_kind    permanent, transient, budget, auth, quota, dependency, collectable (paid,
                its result not saved yet: the next run collects it) (when failed)
error_code      the gateway's code of the last error, or null
reason          why this render happens: new, prompt changed, asset content changed,
                settings changed, source changed
progress        the gateway's progress percentage, or null
tags            the shot's tags
chosen          true for the take ``export`` ships and ``from_shot`` frames are cut from
                (the picked take, else the shot's first finished take)
picked          true when that take was chosen with ``shotrun pick``
from_shots      the shots whose output frames this take starts from (continuity)
width, height   the done video's pixel size as decoded, or null
fps             its frame rate, or null
codec           its video codec (e.g. h264), or null
audio_codec     its audio codec (e.g. aac), null without sound or until done
size_warning    "960x540 where 1280x720 was expected" when the size is not the expected
                one (nominal, or observed by ``shotrun probe``), else null
note            the reviewer's note on this take's output (``shotrun review``), or null
unit            the money of ``credits``: credits (gateway), units (Kling), usd (fal)
estimate        true when ``credits`` is shotrun's estimate, not the provider's figure
=============== =====================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from runner.core.isotime import iso_time
from runner.core.money import CREDITS, Figure, take_figure, totals_json
from runner.core.money import totals as money_totals
from runner.media.observed import trace_fields
from runner.state.base import StoreBase
from runner.state.records import STATUSES, TakeRecord, TakeStatus, parse_tags

TRACE_FIELDS = (
    "id", "shot", "take", "status", "task_id", "submitted", "completed", "downloaded",
    "wall_seconds", "polls", "credits", "output", "sha256", "error",
    "attempts", "failure_kind", "error_code", "reason", "progress", "tags",
    "chosen", "picked", "from_shots",
    "width", "height", "fps", "codec", "audio_codec", "size_warning", "note",
    "unit", "estimate",
)
# The columns of ``takes`` a trace record is made of, in the order :func:`_trace` reads them
# (the last one, the fingerprint, only says which version of the take a record is).
TRACE_COLUMNS = (
    "key", "shot_id", "take", "status", "task_id", "submitted_at", "completed_at",
    "downloaded_at", "polls", "credits_reserved", "credits_estimated", "output_path",
    "sha256", "last_error", "attempts", "failure_kind", "last_error_code", "reason",
    "progress", "tags", "fingerprint", "video", "unit",
)
_TRACE_SELECT = f"SELECT {', '.join(TRACE_COLUMNS)} FROM takes"

def _relative(path: str | None, output_dir: Path | None) -> str | None:
    if path is None or output_dir is None:
        return path
    prefix = f"{output_dir}/"
    if os.sep == "/" and path.startswith(prefix) and "/../" not in path:
        return path[len(prefix):]  # the usual case, without Path objects (20,000 per status)
    try:
        return Path(path).relative_to(output_dir).as_posix()
    except ValueError:
        try:
            return Path(path).resolve().relative_to(output_dir.resolve()).as_posix()
        except ValueError:
            return path


def _trace(row: Sequence[Any], output_dir: Path | None,
           video: str | None = None, unit: str | None = None) -> dict[str, Any]:
    """The trace record of one row in :data:`TRACE_COLUMNS` order (tags still JSON text);
    ``video`` is the row's ``video`` column (JSON text), ``unit`` its ``unit``: ``credits``
    is the take's one figure (runner.core.money.take_figure), in ``unit``, ``estimate`` when the
    provider did not say it."""
    (key, shot_id, take, status, task_id, submitted, completed, downloaded, polls, reserved,
     estimated, output, sha256, error, attempts, failure_kind, error_code, reason, progress,
     tags) = row[:20]
    done = status == "done"
    figure = take_figure(reserved, estimated, unit)
    return {
        "id": key,
        "shot": shot_id,
        "take": take,
        "status": status,
        "task_id": task_id,
        "submitted": iso_time(submitted),
        "completed": iso_time(completed),
        "downloaded": iso_time(downloaded),
        "wall_seconds": (None if downloaded is None or submitted is None
                         else round(downloaded - submitted, 3)),
        "polls": polls,
        "credits": figure.amount,
        "output": _relative(output, output_dir),
        "sha256": sha256,
        "error": None if done else error,
        "attempts": attempts,
        "failure_kind": failure_kind,
        "error_code": None if done else error_code,
        "reason": reason,
        "progress": progress,
        "tags": list(parse_tags(tags)),
        "chosen": False,  # known per shot, not per record: ``status`` fills these three in
        "picked": False,
        "from_shots": [],
        **trace_fields(json.loads(video) if video else None),
        "note": None,  # from the notes table: ``status`` fills it in
        "unit": figure.unit,
        "estimate": figure.estimated,
    }


def trace_record(record: TakeRecord, output_dir: Path | None = None) -> dict[str, Any]:
    """The trace record of one take, fields in :data:`TRACE_FIELDS` order."""
    row = tuple(getattr(record, name) for name in TRACE_COLUMNS[:19])
    trace = _trace((*row, "[]"), output_dir, record.video_json, record.unit)
    trace["status"] = str(record.status)  # the plain value of the StrEnum
    trace["tags"] = list(record.tags)
    return trace


class Finished(NamedTuple):
    """What :func:`runner.state.continuity.chosen_takes` reads of a take, and no more."""

    key: str
    shot_id: str
    take: int
    status: TakeStatus
    fingerprint: str
    output_path: str | None
    downloaded_at: float | None
    sha256: str | None


def read_traces(store: StoreBase,
                output_dir: Path | None) -> tuple[list[dict[str, Any]], list[Finished]]:
    """Every take's trace record (by shot id and take number) and what choosing needs.

    One SELECT of the columns a trace shows, as plain tuples: ``status`` of 20,000 takes
    spent more time building full :class:`TakeRecord` objects (32 fields, frozen) and then
    reading them back than everything else it does with them.
    """
    rows = store._tuples(_TRACE_SELECT)
    rows.sort(key=lambda row: (row[1], row[2]))
    traces = [_trace(row, output_dir, row[21], row[22]) for row in rows]
    finished = [Finished(row[0], row[1], row[2], STATUSES[row[3]], row[20], row[11], row[7],
                         row[12]) for row in rows]
    return traces, finished


def new_trace_record(key: str, shot_id: str, take: int, tags: Iterable[str]) -> dict[str, Any]:
    """The trace record of a take the store has never seen (no run has covered it yet)."""
    empty: dict[str, Any] = dict.fromkeys(TRACE_FIELDS)
    empty.update(id=key, shot=shot_id, take=take, status=TakeStatus.NEW.value, polls=0,
                 attempts=0, reason="new", tags=list(tags), chosen=False, picked=False,
                 from_shots=[])
    return empty


def record_figure(record: Mapping[str, Any]) -> Figure:
    """The money figure of a trace record (what :func:`_trace` made of the take)."""
    return Figure(record["credits"], record.get("unit") or CREDITS, bool(record.get("estimate")))


def trace_totals(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per status, and the takes' figures summed per unit (never across units):
    ``money`` is ``{unit: {total, charged, estimated}}``, ``credits`` the gateway credits'."""
    totals: dict[str, Any] = {"takes": 0, **{status.value: 0 for status in TakeStatus}}
    figures = []
    for record in records:
        totals["takes"] += 1
        totals[record["status"]] = totals.get(record["status"], 0) + 1
        figures.append(record_figure(record))
    by_unit = money_totals(figures)
    totals["credits"] = round(by_unit[CREDITS].total, 4) if CREDITS in by_unit else 0.0
    totals["money"] = totals_json(by_unit)
    return totals
