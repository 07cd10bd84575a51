"""``sync``: record a manifest's takes and plan, per take, what this run does and why.

It must be fast (a 20,000-take manifest re-synced with nothing changed in well under a
second), so it is one transaction: one SELECT of every record, fingerprints compared in
Python, and ``executemany`` for the new takes; only changed takes cost a statement each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runner.core.model import Take
from runner.state.base import S, dumps, insert_event
from runner.state.continuity import stale_dependents
from runner.state.decide import change_reason, collectable, decide
from runner.state.records import (
    RECORD_COLUMNS,
    RECORD_SELECT,
    TakeAction,
    TakePlan,
    TakeRecord,
    record_from_row,
)
from runner.state.sql import Connection, tuple_rows

_AMBIGUOUS_ON_RESUME = "the run stopped before the gateway's answer arrived"
_FINGERPRINT_AT = RECORD_COLUMNS.index("fingerprint")
_STATUS_AT = RECORD_COLUMNS.index("status")
_TAGS_AT = RECORD_COLUMNS.index("tags")
_ATTEMPTS_AT = RECORD_COLUMNS.index("attempts")


#: The reason of a take whose creation another live runner has on the wire.
HELD_ELSEWHERE = "held by another runner"


def sync_takes(
    conn: Connection,
    takes: Sequence[Take],
    payloads: Mapping[str, Mapping[str, Any]],
    clock: Callable[[], float],
    *,
    retry_failed: bool,
    ambiguous: str,
    held_elsewhere: Callable[[], Collection[str]] = tuple,
) -> list[TakePlan]:
    """The body of :meth:`runner.state.StateStore.sync`, inside its write transaction.

    ``held_elsewhere()``: takes another live runner of a team holds (:mod:`runner.state.team`):
    left as they are (not made ambiguous, archived or held: their runner is at work on them); this
    runner plans them again when it claims them (:func:`replan`).

    In steps: read every record once; sort the manifest's takes into new, re-tagged,
    re-fingerprinted (never sent) and changed ones; write the new ones in bulk; add the takes
    whose continuity source changed; turn creations a dead run left ``submitting`` into
    ambiguous ones; archive the changed takes; re-read what was written; decide per take.
    """
    now = clock()
    # plain tuples: records are built by position
    existing = {row[0]: row for row in tuple_rows(conn, f"SELECT {RECORD_SELECT} FROM takes")}
    # Asked after the rows are read: a take another runner put in ``submitting`` was claimed
    # first, so its claim is seen here even when its row changed after the read above.
    busy = frozenset(held_elsewhere())
    found = _compare(conn, takes, existing, payloads, now)
    if busy:
        found.changed = [take for take in found.changed if take.key not in busy]
    _write_new(conn, found, now)
    # Continuity: a done take cut from a source output that is no longer the chosen one.
    changed_keys = {take.key for take in found.changed}
    forced = stale_dependents(conn, takes, existing, changed_keys)
    found.changed.extend(take for take in takes
                         if take.key in forced and take.key not in changed_keys)
    for key, row in existing.items():
        if row[_STATUS_AT] == S.SUBMITTING.value and key not in busy:
            _resume_submitting(conn, key, now)
            found.dirty.append(key)
    previous: dict[str, TakeRecord] = {}
    for take in found.changed:
        tags = found.tag_text[take.tags]
        previous[take.key] = _archive_and_restart(conn, take, tags, payloads.get(take.key), now,
                                                  reason=forced.get(take.key))
    found.dirty.extend(item[0] for item in found.inserts)
    found.dirty.extend(previous)
    rows = _reread(conn, existing, found.dirty)
    return [_plan(conn, take.key, record_from_row(rows[take.key]), previous.get(take.key), now,
                  retry_failed=retry_failed, ambiguous=ambiguous, busy=take.key in busy)
            for take in takes]


def replan(conn: Connection, key: str, clock: Callable[[], float], *, retry_failed: bool,
           ambiguous: str) -> TakePlan:
    """One take planned again, inside the transaction that claimed it for this runner.

    A team's take is planned at the run's start and again when a runner claims it: another
    runner may have moved it since (done, in flight, failed). One left ``submitting`` by a
    runner whose lease ran out is an ambiguous creation now, exactly as after a crash.
    """
    now = clock()
    row = tuple_rows(conn, f"SELECT {RECORD_SELECT} FROM takes WHERE key = ?", (key,))[0]
    if row[_STATUS_AT] == S.SUBMITTING.value:
        _resume_submitting(conn, key, now)
        row = tuple_rows(conn, f"SELECT {RECORD_SELECT} FROM takes WHERE key = ?", (key,))[0]
    return _plan(conn, key, record_from_row(row), None, now, retry_failed=retry_failed,
                 ambiguous=ambiguous)


@dataclass
class _Compared:
    """What :func:`_compare` found, for the steps of :func:`sync_takes` that follow."""

    tag_text: dict[tuple[str, ...], str] = field(default_factory=dict)  # tags -> stored JSON
    inserts: list[tuple[Any, ...]] = field(default_factory=list)  # rows of new takes
    changed: list[Take] = field(default_factory=list)  # sent before, fingerprint changed
    dirty: list[str] = field(default_factory=list)  # keys whose row this transaction rewrites
    retags: list[tuple[str, float, str]] = field(default_factory=list)


def _compare(
    conn: Connection, takes: Sequence[Take], existing: Mapping[str, Sequence[Any]],
    payloads: Mapping[str, Mapping[str, Any]], now: float,
) -> _Compared:
    """Sort the takes by what changed against their stored rows (one pass, in Python).

    A take never sent whose fingerprint changed is simply new still: its row is updated
    here; everything else is left for the bulk steps.
    """
    found = _Compared()
    tag_text = found.tag_text
    for take in takes:
        key = take.key
        tags = tag_text.get(take.tags)
        if tags is None:
            tags = tag_text[take.tags] = dumps(list(take.tags))
        row = existing.get(key)
        if row is None:
            payload = payloads.get(key)
            found.inserts.append((
                key, take.shot_id, take.take, S.NEW.value, take.fingerprint,
                None if payload is None else dumps(payload), "new", tags, now, now,
            ))
        elif row[_FINGERPRINT_AT] != take.fingerprint:
            if row[_STATUS_AT] == S.NEW.value and row[_ATTEMPTS_AT] == 0:
                # Never sent: nothing to archive, it simply is a new take still.
                _refingerprint(conn, take, tags, payloads.get(key), now)
                found.dirty.append(key)
            else:
                found.changed.append(take)
        elif row[_TAGS_AT] != tags:
            found.retags.append((tags, now, key))
            found.dirty.append(key)
    return found


def _write_new(conn: Connection, found: _Compared, now: float) -> None:
    """The new takes and their ``take_added`` events in bulk, then the new tags."""
    conn.executemany(
        "INSERT INTO takes (key, shot_id, take, status, fingerprint, fingerprint_payload,"
        " reason, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        found.inserts,
    )
    conn.executemany(
        "INSERT INTO events (at, key, event, details) VALUES (?, ?, 'take_added', ?)",
        [(now, item[0], dumps({"fingerprint": item[4]})) for item in found.inserts],
    )
    if found.retags:
        conn.executemany("UPDATE takes SET tags = ?, updated_at = ? WHERE key = ?",
                         found.retags)


def _reread(conn: Connection, existing: Mapping[str, Sequence[Any]],
            dirty: Sequence[str]) -> dict[str, Sequence[Any]]:
    """Every row as it is now: only what this transaction wrote is read again, everything
    else is as first selected."""
    rows = dict(existing)
    for start in range(0, len(dirty), 500):
        chunk = dirty[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in tuple_rows(
            conn, f"SELECT {RECORD_SELECT} FROM takes WHERE key IN ({marks})", chunk
        ):
            rows[row[0]] = row
    return rows


def _plan(
    conn: Connection, key: str, record: TakeRecord, previous: TakeRecord | None,
    now: float, *, retry_failed: bool, ambiguous: str, busy: bool = False,
) -> TakePlan:
    """What this run does with one take, and why; a take to hold is held here, durably.

    ``key`` is the manifest's own string: the run keys every table by it, one copy per take.
    """
    action, reason = decide(record, retry_failed=retry_failed, ambiguous=ambiguous, now=now)
    if busy and record.status is S.SUBMITTING:
        # Its creation is on the wire at a live runner: not lost, and not this run's to count
        # or hold. At the provider, as far as this run knows: a team's runner claims it when
        # its runner lets go (or dies), and plans it again then (:func:`replan`).
        action, reason = TakeAction.POLL, HELD_ELSEWHERE
    if action is TakeAction.HOLD and record.status is not S.HELD and not busy:
        conn.execute(
            "UPDATE takes SET status = 'held', updated_at = ? WHERE key = ?", (now, key)
        )
        insert_event(conn, now, key, "take_held", {"policy": ambiguous})
        record = replace(record, status=S.HELD, updated_at=now)
    return TakePlan(key, record, action, reason, previous)


def _refingerprint(
    conn: Connection, take: Take, tags: str, payload: Mapping[str, Any] | None,
    now: float,
) -> None:
    old = conn.execute("SELECT fingerprint FROM takes WHERE key = ?", (take.key,)).fetchone()
    conn.execute(
        "UPDATE takes SET fingerprint = ?, fingerprint_payload = ?, tags = ?, updated_at = ?"
        " WHERE key = ?",
        (take.fingerprint, None if payload is None else dumps(payload), tags, now, take.key),
    )
    insert_event(conn, now, take.key, "fingerprint_changed",
                 {"old": old[0], "new": take.fingerprint, "reason": "new"})


# Statuses whose task may have been billed but whose result is not on disk yet.
UNSAVED_PAID = frozenset({S.SUBMITTED.value, S.COMPLETED.value, S.DOWNLOADING.value,
                          S.AMBIGUOUS.value, S.HELD.value})


def _archive_and_restart(
    conn: Connection, take: Take, tags: str, payload: Mapping[str, Any] | None,
    now: float, *, reason: str | None = None,
) -> TakeRecord:
    """Move the take's record to ``take_history`` and start it afresh; return the old one."""
    key = take.key
    old_row = conn.execute(
        f"SELECT {RECORD_SELECT}, fingerprint_payload FROM takes WHERE key = ?", (key,)
    ).fetchone()
    old_payload = old_row[-1]
    reason = reason or change_reason(
        None if old_payload is None else json.loads(old_payload),
        None if payload is None else dict(payload),
    )
    # With the source outputs it was cut from: a kept render is restored only when they
    # are the ones chosen again (runner.state.ondisk.renders_cut_from).
    columns = ", ".join([*old_row.keys(), "frame_hashes"])
    conn.execute(
        f"INSERT INTO take_history ({columns}, archived_at, archive_reason)"
        f" SELECT {columns}, ?, ? FROM takes WHERE key = ?",
        (now, reason, key),
    )
    conn.execute("DELETE FROM takes WHERE key = ?", (key,))
    conn.execute(
        "INSERT INTO takes (key, shot_id, take, status, fingerprint, fingerprint_payload,"
        " reason, tags, created_at, updated_at) VALUES (?, ?, ?, 'new', ?, ?, ?, ?, ?, ?)",
        (key, take.shot_id, take.take, take.fingerprint,
         None if payload is None else dumps(payload), reason, tags, now, now),
    )
    insert_event(conn, now, key, "fingerprint_changed",
                 {"old": old_row["fingerprint"], "new": take.fingerprint, "reason": reason})
    if old_row["status"] in UNSAVED_PAID or collectable(record_from_row(tuple(old_row)[:-1])):
        # The gateway may be rendering (or have rendered) the old version, paid for: the run
        # does not collect it (its record is in take_history); say so, never silently.
        insert_event(conn, now, key, "paid_task_abandoned",
                     {"task_id": old_row["task_id"], "status": old_row["status"]})
    return record_from_row(tuple(old_row)[:-1])


def _resume_submitting(conn: Connection, key: str, now: float) -> None:
    """A creation whose run died before its answer: it may have been billed."""
    conn.execute(
        "UPDATE takes SET status = 'ambiguous', ambiguous_attempts = ambiguous_attempts + 1,"
        " last_error_code = 'ambiguous_submission', last_error = ?, updated_at = ?"
        " WHERE key = ?",
        (_AMBIGUOUS_ON_RESUME, now, key),
    )
    conn.execute(
        "UPDATE attempts SET outcome = 'ambiguous', error = ?, ended_at = ?"
        " WHERE id = (SELECT MAX(id) FROM attempts WHERE key = ?)",
        (_AMBIGUOUS_ON_RESUME, now, key),
    )
    insert_event(conn, now, key, "take_ambiguous",
                 {"message": _AMBIGUOUS_ON_RESUME, "found_on_resume": True})
