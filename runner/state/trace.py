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
credits         credits reserved by the gateway, else the estimate, or null
output          the video's path relative to the output directory, or null
sha256          SHA-256 (hex) of the saved video, or null
error           the last error message, null once done
attempts        creation requests that may have reached the gateway
failure_kind    permanent, transient, budget, auth, quota, dependency (when failed)
error_code      the gateway's code of the last error, or null
reason          why this render happens: new, prompt changed, asset content changed,
                settings changed, source changed
progress        the gateway's progress percentage, or null
tags            the shot's tags
chosen          true for the take ``export`` ships and ``from_shot`` frames are cut from
                (the picked take, else the shot's first finished take)
picked          true when that take was chosen with ``shotrun pick``
from_shots      the shots whose output frames this take starts from (continuity)
=============== =====================================================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.outputs import iso_time
from runner.state.records import TakeRecord, TakeStatus

TRACE_FIELDS = (
    "id", "shot", "take", "status", "task_id", "submitted", "completed", "downloaded",
    "wall_seconds", "polls", "credits", "output", "sha256", "error",
    "attempts", "failure_kind", "error_code", "reason", "progress", "tags",
    "chosen", "picked", "from_shots",
)


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


def trace_record(record: TakeRecord, output_dir: Path | None = None) -> dict[str, Any]:
    """The trace record of one take, fields in :data:`TRACE_FIELDS` order."""
    wall = None
    if record.downloaded_at is not None and record.submitted_at is not None:
        wall = round(record.downloaded_at - record.submitted_at, 3)
    return {
        "id": record.key,
        "shot": record.shot_id,
        "take": record.take,
        "status": record.status.value,
        "task_id": record.task_id,
        "submitted": iso_time(record.submitted_at),
        "completed": iso_time(record.completed_at),
        "downloaded": iso_time(record.downloaded_at),
        "wall_seconds": wall,
        "polls": record.polls,
        "credits": record.credits,
        "output": _relative(record.output_path, output_dir),
        "sha256": record.sha256,
        "error": None if record.status is TakeStatus.DONE else record.last_error,
        "attempts": record.attempts,
        "failure_kind": record.failure_kind,
        "error_code": None if record.status is TakeStatus.DONE else record.last_error_code,
        "reason": record.reason,
        "progress": record.progress,
        "tags": list(record.tags),
        "chosen": False,  # known per shot, not per record: ``status`` fills these three in
        "picked": False,
        "from_shots": [],
    }


def new_trace_record(key: str, shot_id: str, take: int, tags: Iterable[str]) -> dict[str, Any]:
    """The trace record of a take the store has never seen (no run has covered it yet)."""
    empty: dict[str, Any] = dict.fromkeys(TRACE_FIELDS)
    empty.update(id=key, shot=shot_id, take=take, status=TakeStatus.NEW.value, polls=0,
                 attempts=0, reason="new", tags=list(tags), chosen=False, picked=False,
                 from_shots=[])
    return empty


def trace_totals(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per status and credits of a list of trace records."""
    totals: dict[str, Any] = {"takes": 0, **{status.value: 0 for status in TakeStatus}}
    credits = 0.0
    for record in records:
        totals["takes"] += 1
        totals[record["status"]] = totals.get(record["status"], 0) + 1
        credits += record["credits"] or 0.0
    totals["credits"] = round(credits, 4)
    return totals
