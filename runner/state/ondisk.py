"""The store's side of kept renders and of "done means on disk".

Two moves, each one transaction:

* :func:`mark_restored`: a kept render of the take's current fingerprint is back in place,
  so the take is done again with that render's facts (its task id, credits, hash), taken
  from its sidecar. No attempt is added to the ledger: a restore spends nothing. The hash
  is the render's own, so a pick or a note written about it holds again.
* :func:`renders_cut_from`: which kept renders of a take that starts from another shot's
  frame were cut from the source outputs chosen now.
* :func:`mark_output_lost`: a done take whose file is missing or changed is done no more.
  It goes back to ``completed`` (its link is known: the run downloads it again, refreshing
  the link from the task when needed), to ``submitted`` (a task id but no link: the run asks
  the task), or, with neither, to ``failed`` with kind ``missing`` (a new render costs money:
  only ``--retry-failed`` pays for it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.core.errors import StateError
from runner.core.isotime import epoch_from_iso
from runner.state.base import S, StoreBase, dumps, insert_event
from runner.state.decide import OUTPUT_LOST
from runner.state.records import OUTPUT_SELECT, FailureKind, TakeOutput, output_from_row


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def mark_restored(store: StoreBase, key: str, fingerprint: str, output_path: Path,
                  sha256: str, size: int, sidecar: dict[str, Any], *, reason: str) -> None:
    """Take ``key`` (still of ``fingerprint``) is done again with the restored render.

    Allowed from any status but ``submitting`` (a creation may be on the wire) and only while
    the record still has ``fingerprint``. :class:`StateError` otherwise.
    """
    found = sidecar.get("credits")
    credits: dict[str, Any] = found if isinstance(found, dict) else {}
    task_id = sidecar.get("task_id") if isinstance(sidecar.get("task_id"), str) else None
    video = sidecar.get("video")
    request = sidecar.get("request")
    found_attempts = sidecar.get("attempts")  # the creations that render took
    attempts = found_attempts if type(found_attempts) is int and found_attempts >= 0 else 0
    now = store._clock()
    with store._write() as conn:
        row = conn.execute("SELECT status, task_id FROM takes WHERE key = ? AND fingerprint = ?",
                           (key, fingerprint)).fetchone()
        if row is None or row[0] == S.SUBMITTING.value:
            raise StateError(f"take {key}: cannot restore a kept render now")
        same_task = row[1] is not None and row[1] == task_id
        conn.execute(
            "UPDATE takes SET status = 'done', failure_kind = NULL, last_error_code = NULL,"
            " last_error = NULL, task_id = ?, credits_estimated = ?, credits_reserved = ?,"
            " output_path = ?, size = ?, sha256 = ?, verified_duration = ?, video = ?,"
            " payload = COALESCE(?, payload), submitted_at = COALESCE(?, submitted_at),"
            " completed_at = COALESCE(?, completed_at), downloaded_at = ?, reason = ?,"
            " gateway_status = 'completed', progress = 100,"
            # CASE, not SQLite's two-argument MAX(): PostgreSQL (a team's store) lacks it.
            " attempts = CASE WHEN attempts > ? THEN attempts ELSE ? END,"
            " result_url = CASE WHEN ? THEN result_url END,"
            " link_expires_at = CASE WHEN ? THEN link_expires_at END,"
            " frame_hashes = COALESCE((SELECT frame_hashes FROM take_history"
            "   WHERE key = ? AND fingerprint = ? AND sha256 = ? ORDER BY history_id DESC"
            "   LIMIT 1), frame_hashes),"
            " updated_at = ? WHERE key = ?",
            (task_id, _number(credits.get("estimated")), _number(credits.get("reserved")),
             str(output_path), size, sha256, _number(sidecar.get("verified_duration")),
             json.dumps(video, sort_keys=True) if isinstance(video, dict) else None,
             dumps(request) if isinstance(request, dict) else None,
             epoch_from_iso(sidecar.get("submitted")),
             epoch_from_iso(sidecar.get("completed")),
             now, reason, attempts, attempts, same_task, same_task, key, fingerprint, sha256,
             now, key),
        )
        insert_event(conn, now, key, "take_restored",
                     {"output_path": str(output_path), "sha256": sha256, "size": size,
                      "task_id": task_id, "reason": reason})


def mark_output_lost(store: StoreBase, key: str, problem: str, *, link_alive: bool,
                     message: str) -> str:
    """A done take's file is ``problem`` (missing, changed): it is done no more.

    Returns the status it moved to: ``completed`` (download again), ``submitted`` (ask the
    task for its result) or ``failed`` (kind ``missing``: nothing can bring it back free).
    """
    now = store._clock()
    with store._write() as conn:
        row = conn.execute("SELECT status, task_id, result_url FROM takes WHERE key = ?",
                           (key,)).fetchone()
        if row is None or row[0] != S.DONE.value:
            raise StateError(f"take {key}: only a done take can lose its file")
        if link_alive and row[1]:
            status = S.COMPLETED.value if row[2] else S.SUBMITTED.value
            conn.execute(
                "UPDATE takes SET status = ?, last_error_code = ?,"
                " last_error = ?, updated_at = ? WHERE key = ?",
                (status, OUTPUT_LOST, message, now, key))
        else:
            status = S.FAILED.value
            conn.execute(
                "UPDATE takes SET status = 'failed', failure_kind = ?,"
                " last_error_code = 'output_missing', last_error = ?, updated_at = ?"
                " WHERE key = ?", (FailureKind.MISSING.value, message, now, key))
        insert_event(conn, now, key, "output_lost",
                     {"problem": problem, "now": status, "message": message})
    return status


def renders_cut_from(store: StoreBase, key: str, fingerprint: str,
                     sources: dict[str, str]) -> set[str]:
    """The hashes of take ``key``'s earlier renders of ``fingerprint`` that were cut from
    exactly the source outputs ``sources`` (shot id -> SHA-256), as ``take_history`` says.

    A take that starts from another shot's frame keeps its fingerprint when that frame
    changes; which of its kept renders is the one wanted depends on the frame it was cut from.
    """
    rows = store._tuples(
        "SELECT sha256, frame_hashes FROM take_history WHERE key = ? AND fingerprint = ?"
        " AND status = 'done' AND sha256 IS NOT NULL AND frame_hashes IS NOT NULL",
        (key, fingerprint))
    return {sha256 for sha256, hashes in rows if json.loads(hashes) == sources}


def done_files(store: StoreBase) -> list[TakeOutput]:
    """Every take recorded as done, with what checking its file needs (``status`` reads
    20,000 of them: plain tuples, not full records)."""
    rows = store._tuples(f"SELECT {OUTPUT_SELECT} FROM takes WHERE status = 'done'")
    return [output_from_row(row) for row in rows]
