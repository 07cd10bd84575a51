"""The store itself: one writer (the run), any number of read-only readers (``status``).

Every method that changes something is one transaction that also appends a row to the
append-only ``events`` table, and it has committed (fsynced, ``synchronous=FULL``) when it
returns: the scheduler may act on a transition the moment the call is over, and a ``kill -9``
one instruction later cannot take it back. The only exceptions are the cosmetic counters
(:meth:`StateStore.mark_progress`, :meth:`StateStore.record_poll`), committed with
``synchronous=NORMAL`` (visible to readers at once, durable with the next real commit) and
logged as events only when the gateway's status word changes, so that polling 20,000 tasks
does not fill the disk with events.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from runner.errors import StateError
from runner.model import Take
from runner.redact import redact, redact_value
from runner.state import schema
from runner.state.plan import change_reason, decide
from runner.state.records import (
    Event,
    FailureKind,
    TakePlan,
    TakeRecord,
    TakeStatus,
    UploadRecord,
    event_from_row,
    record_from_row,
)

log = structlog.get_logger()
S = TakeStatus

_ANY_BUT_DONE = frozenset(S) - {S.DONE}
_CAN_RESET = frozenset(S) - {S.DONE, S.SUBMITTING}


class UnknownTake(StateError, KeyError):
    """A take key the store does not know (a bug in the caller, or the wrong store)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown take"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class StateStore:
    """The durable record of a manifest's takes. Create with :meth:`open`/:meth:`open_readonly`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        readonly: bool,
        lock: schema.WriterLock | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self._clock = clock
        self._mutex = threading.RLock()  # callers may use asyncio.to_thread

    # ----------------------------------------------------------------- life cycle
    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> StateStore:
        """Open (creating it and its directory) as *the* writer; fails if another run holds it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = schema.WriterLock(path)
        lock.acquire()
        try:
            schema.create_private_file(path)
            conn = schema.connect(path, readonly=False)
            try:
                schema.migrate(conn, path)
                conn.execute("PRAGMA quick_check").fetchone()
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise StateError(
                    f"state store {path} is damaged ({exc}): move it aside and run again"
                ) from exc
            except BaseException:
                conn.close()
                raise
        except BaseException:
            lock.release()
            raise
        log.debug("state_store_opened", path=str(path))
        return cls(path, conn, readonly=False, lock=lock, clock=clock)

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore:
        """Open for reading beside a live run: takes no lock, never blocks the writer."""
        path = Path(path)
        if not path.is_file():
            raise StateError(f"no state store at {path}: no run has happened yet")
        conn = schema.connect(path, readonly=True)
        try:
            version = schema.stored_version(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"state store {path} cannot be read: {exc}") from exc
        try:
            schema.check_version(path, version)
        except StateError:
            conn.close()
            raise
        if version < schema.SCHEMA_VERSION:
            conn.close()
            raise StateError(
                f"state store {path} has schema version {version}: run `shotrun run` once "
                "to upgrade it"
            )
        return cls(path, conn, readonly=True)

    def close(self) -> None:
        """Close the database and release the writer lock (idempotent)."""
        with self._mutex:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- plumbing
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state store {self.path} is closed")
        return self._conn

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on exit (rolled back on any exception)."""
        if self.readonly:
            raise StateError(f"state store {self.path} is open read-only")
        with self._mutex:
            conn = self.conn
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StateError(f"state store {self.path}: {exc}") from exc
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._mutex:
            conn = self.conn
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StateError(f"state store {self.path}: {exc}") from exc

    def _event(
        self, conn: sqlite3.Connection, key: str | None, event: str, **details: Any
    ) -> None:
        conn.execute(
            "INSERT INTO events (at, key, event, details) VALUES (?, ?, ?, ?)",
            (self._clock(), key, event, _dumps(redact_value(details))),
        )

    def _status_of(self, conn: sqlite3.Connection, key: str) -> TakeStatus:
        row = conn.execute("SELECT status FROM takes WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise UnknownTake(f"take {key} is not in the state store {self.path}")
        return TakeStatus(row[0])

    def _move(
        self,
        key: str,
        allowed: frozenset[TakeStatus],
        to: TakeStatus | None,
        event: str,
        sets: Mapping[str, Any],
        details: Mapping[str, Any],
        *,
        sql_sets: str = "",
        sql_params: tuple[Any, ...] = (),
        durable: bool = True,
    ) -> TakeStatus:
        """Check the transition, update the take, log the event; return the old status."""
        with self._write(durable=durable) as conn:
            old = self._status_of(conn, key)
            if old not in allowed:
                target = to.value if to else event
                raise StateError(f"take {key}: cannot go from {old.value} to {target}")
            values = dict(sets)
            if to is not None:
                values["status"] = to.value
            values["updated_at"] = self._clock()
            assignments = ", ".join(f"{name} = ?" for name in values)
            if sql_sets:
                assignments += ", " + sql_sets
            conn.execute(
                f"UPDATE takes SET {assignments} WHERE key = ?",
                (*values.values(), *sql_params, key),
            )
            self._event(conn, key, event, **details)
            self._after_move(conn, key, old, to, values)
        return old

    def _after_move(
        self, conn: sqlite3.Connection, key: str, old: TakeStatus, to: TakeStatus | None,
        values: Mapping[str, Any],
    ) -> None:
        """Keep the ``attempts`` ledger (the budget's source of truth) in step."""
        outcome = {
            S.SUBMITTED: "submitted",
            S.AMBIGUOUS: "ambiguous",
            S.FAILED: "refused" if old is S.SUBMITTING else None,
            S.NEW: "not_sent" if old is S.SUBMITTING else None,
        }.get(to) if to is not None else None
        if outcome is None:
            if to is S.FAILED:
                conn.execute(
                    "UPDATE attempts SET error_code = ?, error = ?, ended_at = ?"
                    " WHERE id = (SELECT MAX(id) FROM attempts WHERE key = ?)",
                    (values.get("last_error_code"), values.get("last_error"), self._clock(), key),
                )
            return
        conn.execute(
            "UPDATE attempts SET outcome = ?, task_id = COALESCE(?, task_id),"
            " credits_reserved = COALESCE(?, credits_reserved), error_code = ?, error = ?,"
            " ended_at = ? WHERE id = (SELECT MAX(id) FROM attempts WHERE key = ?)",
            (outcome, values.get("task_id"), values.get("credits_reserved"),
             values.get("last_error_code"), values.get("last_error"), self._clock(), key),
        )

    # ----------------------------------------------------------------- sync
    def sync(
        self,
        takes: Sequence[Take],
        fingerprint_payloads: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        retry_failed: bool = False,
        ambiguous: str = "resubmit",
    ) -> list[TakePlan]:
        """Record every take of the manifest and say what this run does with each.

        Call it once, at the start of a run. A take left ``submitting`` by a run that died is
        an ambiguous submission now. A take whose fingerprint changed is moved to
        ``take_history`` and starts fresh (its files: :func:`runner.outputs.archive_previous`
        with ``plan.previous``). ``ambiguous`` is "resubmit" or "hold".
        """
        payloads = fingerprint_payloads or {}
        now = self._clock()
        plans: list[TakePlan] = []
        with self._write() as conn:
            existing = {
                row["key"]: row
                for row in conn.execute(
                    "SELECT key, status, fingerprint, tags, attempts FROM takes"
                )
            }
            inserts: list[tuple[Any, ...]] = []
            changed: list[tuple[Take, str, sqlite3.Row]] = []
            retags: list[tuple[str, float, str]] = []
            for take in takes:
                key = take.key
                tags = _dumps(list(take.tags))
                row = existing.get(key)
                if row is None:
                    payload = payloads.get(key)
                    inserts.append((
                        key, take.shot_id, take.take, S.NEW.value, take.fingerprint,
                        None if payload is None else _dumps(payload), "new", tags, now, now,
                    ))
                elif row["fingerprint"] != take.fingerprint:
                    changed.append((take, tags, row))
                elif row["tags"] != tags:
                    retags.append((tags, now, key))
            conn.executemany(
                "INSERT INTO takes (key, shot_id, take, status, fingerprint,"
                " fingerprint_payload, reason, tags, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
            conn.executemany(
                "INSERT INTO events (at, key, event, details) VALUES (?, ?, 'take_added', ?)",
                [(now, item[0], _dumps({"fingerprint": item[4]})) for item in inserts],
            )
            conn.executemany("UPDATE takes SET tags = ?, updated_at = ? WHERE key = ?", retags)
            previous: dict[str, TakeRecord] = {}
            for take, tags, row in changed:
                old = self._replace_fingerprint(conn, take, tags, payloads.get(take.key), row)
                if old is not None:
                    previous[take.key] = old
            for row in conn.execute("SELECT key FROM takes WHERE status = 'submitting'"):
                self._resume_submitting(conn, row["key"])
            records = {
                row["key"]: record_from_row(row) for row in conn.execute("SELECT * FROM takes")
            }
            holds: list[str] = []
            for take in takes:
                record = records[take.key]
                action, reason = decide(record, retry_failed=retry_failed, ambiguous=ambiguous)
                if action == "hold" and record.status is not S.HELD:
                    holds.append(take.key)
                plans.append(TakePlan(take.key, record, action, reason, previous.get(take.key)))
            for key in holds:
                conn.execute(
                    "UPDATE takes SET status = 'held', updated_at = ? WHERE key = ?", (now, key)
                )
                self._event(conn, key, "take_held", policy=ambiguous)
        if holds:
            held = set(holds)
            plans = [
                TakePlan(p.key, _with_status(p.record, S.HELD), p.action, p.reason, p.previous)
                if p.key in held else p
                for p in plans
            ]
        log.info("state_synced", takes=len(plans), added=len(inserts), changed=len(changed))
        return plans

    def _replace_fingerprint(
        self, conn: sqlite3.Connection, take: Take, tags: str,
        payload: Mapping[str, Any] | None, row: sqlite3.Row,
    ) -> TakeRecord | None:
        """Start a take afresh under its new fingerprint; return the archived record."""
        now = self._clock()
        key = take.key
        new_payload = None if payload is None else _dumps(payload)
        if row["status"] == S.NEW.value and row["attempts"] == 0:
            conn.execute(
                "UPDATE takes SET fingerprint = ?, fingerprint_payload = ?, tags = ?,"
                " updated_at = ? WHERE key = ?",
                (take.fingerprint, new_payload, tags, now, key),
            )
            self._event(conn, key, "fingerprint_changed", old=row["fingerprint"],
                        new=take.fingerprint, reason="new")
            return None
        old_row = conn.execute("SELECT * FROM takes WHERE key = ?", (key,)).fetchone()
        old_payload = old_row["fingerprint_payload"]
        reason = change_reason(
            None if old_payload is None else json.loads(old_payload),
            None if payload is None else dict(payload),
        )
        columns = ", ".join(old_row.keys())
        conn.execute(
            f"INSERT INTO take_history ({columns}, archived_at, archive_reason)"
            f" SELECT {columns}, ?, ? FROM takes WHERE key = ?",
            (now, reason, key),
        )
        conn.execute("DELETE FROM takes WHERE key = ?", (key,))
        conn.execute(
            "INSERT INTO takes (key, shot_id, take, status, fingerprint, fingerprint_payload,"
            " reason, tags, created_at, updated_at) VALUES (?, ?, ?, 'new', ?, ?, ?, ?, ?, ?)",
            (key, take.shot_id, take.take, take.fingerprint, new_payload, reason, tags, now, now),
        )
        self._event(conn, key, "fingerprint_changed", old=row["fingerprint"],
                    new=take.fingerprint, reason=reason)
        return record_from_row(old_row)

    def _resume_submitting(self, conn: sqlite3.Connection, key: str) -> None:
        """A creation whose run died before its answer: it may have been billed."""
        now = self._clock()
        message = "the run stopped before the gateway's answer arrived"
        conn.execute(
            "UPDATE takes SET status = 'ambiguous', ambiguous_attempts = ambiguous_attempts + 1,"
            " last_error_code = 'ambiguous_submission', last_error = ?, updated_at = ?"
            " WHERE key = ?",
            (message, now, key),
        )
        conn.execute(
            "UPDATE attempts SET outcome = 'ambiguous', error = ?, ended_at = ?"
            " WHERE id = (SELECT MAX(id) FROM attempts WHERE key = ?)",
            (message, now, key),
        )
        self._event(conn, key, "take_ambiguous", message=message, found_on_resume=True)

    # ----------------------------------------------------------------- transitions
    def mark_submitting(
        self, key: str, payload_redacted: Mapping[str, Any], estimated_credits: float | None
    ) -> int:
        """Commit the intent to create, *before* sending; return the attempt number."""
        allowed = frozenset({S.NEW, S.FAILED, S.AMBIGUOUS, S.HELD})
        now = self._clock()
        with self._write() as conn:
            old = self._status_of(conn, key)
            if old not in allowed:
                raise StateError(f"take {key}: cannot go from {old.value} to submitting")
            row = conn.execute(
                "SELECT attempts, fingerprint FROM takes WHERE key = ?", (key,)
            ).fetchone()
            attempt = int(row["attempts"]) + 1
            conn.execute(
                "UPDATE takes SET status = 'submitting', attempts = ?, payload = ?,"
                " credits_estimated = ?, credits_reserved = NULL, task_id = NULL,"
                " result_url = NULL, link_expires_at = NULL, gateway_status = NULL,"
                " progress = NULL, failure_kind = NULL, submitting_at = ?, submitted_at = NULL,"
                " completed_at = NULL, updated_at = ? WHERE key = ?",
                (attempt, _dumps(redact_value(dict(payload_redacted))), estimated_credits,
                 now, now, key),
            )
            conn.execute(
                "INSERT INTO attempts (key, attempt, fingerprint, outcome, credits_estimated,"
                " started_at) VALUES (?, ?, ?, 'submitting', ?, ?)",
                (key, attempt, row["fingerprint"], estimated_credits, now),
            )
            self._event(conn, key, "take_submitting", attempt=attempt,
                        estimated_credits=estimated_credits)
        return attempt

    def mark_submitted(
        self, key: str, task_id: str, credits_reserved: float | None = None,
        estimated_time: float | None = None,
    ) -> None:
        """Commit the task id the moment it arrives."""
        self._move(
            key, frozenset({S.SUBMITTING, S.AMBIGUOUS, S.HELD}), S.SUBMITTED, "take_submitted",
            {"task_id": task_id, "credits_reserved": credits_reserved,
             "estimated_time": estimated_time, "submitted_at": self._clock(),
             "gateway_status": "pending", "progress": 0, "last_error_code": None,
             "last_error": None},
            {"task_id": task_id, "credits_reserved": credits_reserved,
             "estimated_time": estimated_time},
        )

    def mark_not_sent(self, key: str, message: str) -> None:
        """The creation request certainly never reached the gateway (e.g. refused to connect,
        429): back to ``new``; the attempt is not counted nor charged to the budget."""
        self._move(
            key, frozenset({S.SUBMITTING}), S.NEW, "take_not_sent",
            {"last_error": redact(message)}, {"message": message},
            sql_sets="attempts = attempts - 1",
        )

    def mark_ambiguous(self, key: str, message: str) -> None:
        """The creation was sent but its answer was lost: it may be rendering, and billed."""
        self._move(
            key, frozenset({S.SUBMITTING}), S.AMBIGUOUS, "take_ambiguous",
            {"last_error_code": "ambiguous_submission", "last_error": redact(message)},
            {"message": message}, sql_sets="ambiguous_attempts = ambiguous_attempts + 1",
        )

    def mark_held(self, key: str) -> None:
        """Keep an ambiguous take aside instead of resubmitting it."""
        self._move(key, frozenset({S.AMBIGUOUS, S.SUBMITTING, S.HELD}), S.HELD, "take_held",
                   {}, {})

    def mark_progress(self, key: str, gateway_status: str, progress: int | None) -> None:
        """The gateway's status word and percentage (cheap: see the module docstring)."""
        with self._write(durable=False) as conn:
            row = conn.execute(
                "SELECT gateway_status FROM takes WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                raise UnknownTake(f"take {key} is not in the state store {self.path}")
            conn.execute(
                "UPDATE takes SET gateway_status = ?, progress = ?, updated_at = ?"
                " WHERE key = ?",
                (gateway_status, progress, self._clock(), key),
            )
            if row[0] != gateway_status:
                self._event(conn, key, "take_progress", gateway_status=gateway_status,
                            progress=progress)

    def record_poll(self, key: str, count: int = 1) -> None:
        """Count a status query of the take's task (for the trace)."""
        with self._write(durable=False) as conn:
            cursor = conn.execute(
                "UPDATE takes SET polls = polls + ? WHERE key = ?", (count, key)
            )
            if cursor.rowcount == 0:
                raise UnknownTake(f"take {key} is not in the state store {self.path}")

    def mark_completed(
        self, key: str, result_url: str, link_expires_at: float | None = None
    ) -> None:
        """The gateway finished it: the result URL is known (also a refreshed link)."""
        self._move(
            key,
            frozenset({S.SUBMITTED, S.COMPLETED, S.DOWNLOADING, S.FAILED}),
            S.COMPLETED, "take_completed",
            {"result_url": result_url, "link_expires_at": link_expires_at,
             "gateway_status": "completed", "progress": 100, "failure_kind": None},
            {"link_expires_at": link_expires_at},
            sql_sets="completed_at = COALESCE(completed_at, ?)", sql_params=(self._clock(),),
        )

    def mark_downloading(self, key: str) -> None:
        """A download into the take's ``.part`` file starts."""
        self._move(key, frozenset({S.COMPLETED, S.DOWNLOADING, S.FAILED}), S.DOWNLOADING,
                   "take_downloading", {}, {})

    def mark_failed(self, key: str, kind: str, code: str | None, message: str) -> None:
        """The take failed; ``kind`` is a :class:`FailureKind` value."""
        kind = FailureKind(kind).value
        self._move(
            key, _ANY_BUT_DONE, S.FAILED, "take_failed",
            {"failure_kind": kind, "last_error_code": code, "last_error": redact(message)},
            {"kind": kind, "code": code, "message": message},
        )

    def mark_done(
        self, key: str, output_path: str | Path, size: int, sha256: str,
        verified_duration: float | None = None,
    ) -> None:
        """Downloaded, verified and in place: nothing more to do for this fingerprint."""
        self._move(
            key, frozenset({S.SUBMITTED, S.COMPLETED, S.DOWNLOADING, S.FAILED}), S.DONE,
            "take_done",
            {"output_path": str(output_path), "size": size, "sha256": sha256,
             "verified_duration": verified_duration, "downloaded_at": self._clock(),
             "failure_kind": None, "last_error_code": None, "last_error": None},
            {"output_path": str(output_path), "size": size, "sha256": sha256,
             "verified_duration": verified_duration},
        )

    def reset_for_retry(self, key: str) -> None:
        """Forget the current task (failed, gone, cancelled): the take can be submitted anew."""
        self._move(
            key, _CAN_RESET, S.NEW, "take_reset",
            {"task_id": None, "result_url": None, "link_expires_at": None,
             "gateway_status": None, "progress": None, "failure_kind": None,
             "credits_reserved": None},
            {},
        )

    # ----------------------------------------------------------------- uploads
    def get_upload(self, sha256: str) -> UploadRecord | None:
        """The upload of the file with this content, if one was recorded."""
        with self._mutex:
            row = self.conn.execute("SELECT * FROM uploads WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            return None
        return UploadRecord(row["sha256"], row["url"], row["expires_at"], row["size"],
                            row["mime"], row["uploaded_at"])

    def put_upload(
        self, sha256: str, url: str, expires_at: float | None, size: int | None = None,
        mime: str | None = None,
    ) -> None:
        """Remember an upload so that the same content is not uploaded again before expiry."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO uploads (sha256, url, expires_at, size, mime,"
                " uploaded_at) VALUES (?, ?, ?, ?, ?, ?)",
                (sha256, url, expires_at, size, mime, self._clock()),
            )
            self._event(conn, None, "file_uploaded", sha256=sha256, expires_at=expires_at,
                        size=size, mime=mime)

    # ----------------------------------------------------------------- reading
    def credits_committed(self) -> float:
        """Credits reserved over the manifest's whole life, across runs and fingerprints.

        Attempts with a task id count the gateway's ``credits_reserved`` (else the estimate);
        attempts still in flight or ambiguous count their estimate: they may have been billed.
        """
        with self._mutex:
            row = self.conn.execute(
                "SELECT COALESCE(SUM(CASE"
                " WHEN task_id IS NOT NULL THEN COALESCE(credits_reserved, credits_estimated, 0)"
                " WHEN outcome IN ('submitting', 'ambiguous') THEN COALESCE(credits_estimated, 0)"
                " ELSE 0 END), 0) FROM attempts"
            ).fetchone()
        return float(row[0])

    def record(self, key: str) -> TakeRecord:
        """The current record of one take."""
        with self._mutex:
            row = self.conn.execute("SELECT * FROM takes WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise UnknownTake(f"take {key} is not in the state store {self.path}")
        return record_from_row(row)

    def records(self) -> list[TakeRecord]:
        """Every take's current record, ordered by shot id and take number."""
        with self._mutex:
            rows = self.conn.execute("SELECT * FROM takes ORDER BY shot_id, take").fetchall()
        return [record_from_row(row) for row in rows]

    def history(self, key: str | None = None) -> list[TakeRecord]:
        """Records replaced by a fingerprint change, oldest first."""
        sql = "SELECT * FROM take_history"
        params: tuple[Any, ...] = ()
        if key is not None:
            sql += " WHERE key = ?"
            params = (key,)
        with self._mutex:
            rows = self.conn.execute(sql + " ORDER BY history_id", params).fetchall()
        return [record_from_row(row) for row in rows]

    def events(self, key: str | None = None, *, since_id: int = 0) -> list[Event]:
        """Event rows (all, or one take's), oldest first; ``since_id`` to tail the log."""
        sql = "SELECT * FROM events WHERE id > ?"
        params: tuple[Any, ...] = (since_id,)
        if key is not None:
            sql += " AND key = ?"
            params = (since_id, key)
        with self._mutex:
            rows = self.conn.execute(sql + " ORDER BY id", params).fetchall()
        return [event_from_row(row) for row in rows]

    def totals(self) -> dict[str, Any]:
        """Counts per status, attempts, ambiguous submissions and credits committed."""
        with self._read() as conn:
            counts = {status.value: 0 for status in TakeStatus}
            for row in conn.execute("SELECT status, COUNT(*) FROM takes GROUP BY status"):
                counts[row[0]] = row[1]
            attempts = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(outcome = 'ambiguous'), 0) FROM attempts"
                " WHERE outcome != 'not_sent'"
            ).fetchone()
        return {
            "takes": sum(counts.values()),
            **counts,
            "attempts": int(attempts[0]),
            "ambiguous_submissions": int(attempts[1]),
            "credits_committed": self.credits_committed(),
        }


def _with_status(record: TakeRecord, status: TakeStatus) -> TakeRecord:
    return replace(record, status=status)
