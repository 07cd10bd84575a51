"""The moves of a take from one status to the next: one committed transaction and one event each.

Each move states the statuses it may start from, so that a scheduler bug (downloading a take
that was never submitted, resubmitting one that has a task id) fails loudly in tests instead of
silently paying twice. The ``attempts`` table is kept in step: it is the budget's ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.core.errors import StateError
from runner.core.money import CREDITS
from runner.core.redact import bounded, redact, redact_value
from runner.state.base import S, StoreBase, UnknownTake, dumps, insert_event
from runner.state.records import STATUSES, AttemptOutcome, FailureKind, TakeStatus
from runner.state.sql import Connection

OUT = AttemptOutcome

_ANY_BUT_DONE = frozenset(S) - {S.DONE}
_CAN_RESET = frozenset(S) - {S.DONE, S.SUBMITTING}
_CAN_SUBMIT = frozenset({S.NEW, S.FAILED, S.AMBIGUOUS, S.HELD})
_CAN_GET_TASK = frozenset({S.SUBMITTING, S.AMBIGUOUS, S.HELD})
_CAN_HOLD = frozenset({S.AMBIGUOUS, S.SUBMITTING, S.HELD})
_JUST_SUBMITTING = frozenset({S.SUBMITTING})
_LOST = frozenset({S.AMBIGUOUS, S.HELD})
# CASE, not SQLite's two-argument MAX(): PostgreSQL (a team's store) has only GREATEST.
_UNAMBIGUOUS = ("ambiguous_attempts = CASE WHEN ambiguous_attempts > 0"
                " THEN ambiguous_attempts - 1 ELSE 0 END")
_CAN_COMPLETE = frozenset({S.SUBMITTED, S.COMPLETED, S.DOWNLOADING, S.FAILED})
_CAN_DOWNLOAD = frozenset({S.COMPLETED, S.DOWNLOADING, S.FAILED})
_CAN_FINISH = _CAN_COMPLETE
_SUBMITTING_SQL = (
    "UPDATE takes SET status = 'submitting', attempts = ?, payload = ?,"
    " credits_estimated = ?, credits_reserved = NULL, task_id = NULL,"
    " result_url = NULL, link_expires_at = NULL, gateway_status = NULL,"
    " progress = NULL, failure_kind = NULL, submitting_at = ?, submitted_at = NULL,"
    " completed_at = NULL, unit = ?, account = ?, updated_at = ? WHERE key = ?"
)
_ATTEMPT_SQL = (
    "INSERT INTO attempts (key, attempt, fingerprint, outcome, credits_estimated,"
    " unit, started_at) VALUES (?, ?, ?, 'submitting', ?, ?, ?)"
)
_PROGRESS_SQL = (
    "UPDATE takes SET gateway_status = ?, progress = ?, updated_at = ?,"
    " polls = polls + ? WHERE key = ?"
)


# What the ledger holds per unit: attempts with a task id count the provider's figure (else
# the estimate); attempts in flight or ambiguous their estimate (they may have been billed).
COMMITTED_SQL = (
    "SELECT COALESCE(unit, 'credits'), COALESCE(SUM(CASE"
    " WHEN task_id IS NOT NULL THEN COALESCE(credits_reserved, credits_estimated, 0)"
    " WHEN outcome IN ('submitting', 'ambiguous') THEN COALESCE(credits_estimated, 0)"
    " ELSE 0 END), 0) FROM attempts GROUP BY 1"
)


def committed_of(rows: Iterable[Sequence[Any]]) -> dict[str, float]:
    """``{unit: amount}`` from the rows of :data:`COMMITTED_SQL`."""
    # A sum of decimals: no 728.9999999999998.
    return {str(row[0]): round(float(row[1]), 6) for row in rows}


class BudgetRefused(Exception):
    """A creation that would take the ledger over the cap: nothing was recorded."""

    def __init__(self, committed: float, estimate: float | None, cap: float) -> None:
        super().__init__(f"committed {committed} + {estimate} > cap {cap}")
        self.committed = committed
        self.estimate = estimate
        self.cap = cap


class ClaimLost(Exception):
    """This runner no longer holds the take (its lease ran out and another runner took it):
    it must not create it. Nothing was recorded."""


class Transitions(StoreBase):
    """``mark_*`` methods of :class:`runner.state.StateStore`."""

    def mark_submitting(
        self, key: str, payload_redacted: Mapping[str, Any], estimated_credits: float | None,
        unit: str = CREDITS, *, account: str | None = None, cap: float | None = None,
    ) -> int:
        """Commit the intent to create, *before* sending; return the attempt number.

        ``unit`` is the money the provider bills in (:mod:`runner.core.money`): the estimate and
        the figure the provider answers are in it. ``account`` names the provider account
        whose key sends it. ``cap``: the budget in ``unit``; with it, the ledger's total plus
        this estimate is checked in the same transaction (:class:`BudgetRefused` when over),
        so runners sharing a store never commit more than the cap between them."""
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "SELECT status, attempts, fingerprint FROM takes WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                raise UnknownTake(f"take {key} is not in the state store {self.where}")
            if STATUSES[row[0]] not in _CAN_SUBMIT:
                raise StateError(f"take {key}: cannot go from {row[0]} to submitting")
            self._admit_submitting(conn, key)
            if cap is not None:
                self._check_cap(conn, unit, estimated_credits, cap)
            attempt = int(row[1]) + 1
            payload = dumps(redact_value(dict(payload_redacted)))
            conn.execute(_SUBMITTING_SQL,
                         (attempt, payload, estimated_credits, now, unit, account, now, key))
            conn.execute(_ATTEMPT_SQL, (key, attempt, row[2], estimated_credits, unit, now))
            insert_event(conn, self._clock(), key, "take_submitting",
                         {"attempt": attempt, "estimated_credits": estimated_credits})
        return attempt

    def mark_submitted(
        self, key: str, task_id: str, credits_reserved: float | None = None,
        estimated_time: float | None = None, *, found: bool = False,
    ) -> None:
        """Commit the task id the moment it arrives.

        ``found``: the id was looked up after an earlier run lost the creation's answer (a
        provider with client-chosen ids): the take is no longer counted as ambiguous.
        """
        self._move(
            key, _CAN_GET_TASK, S.SUBMITTED, "take_submitted",
            {"task_id": task_id, "credits_reserved": credits_reserved,
             "estimated_time": estimated_time, "submitted_at": self._clock(),
             "gateway_status": "pending", "progress": 0, "last_error_code": None,
             "last_error": None},
            {"task_id": task_id, "credits_reserved": credits_reserved,
             "estimated_time": estimated_time, "found": found},
            sql_sets=_UNAMBIGUOUS if found else "",
        )

    def mark_never_created(self, key: str, message: str) -> None:
        """A creation an earlier run lost the answer of was looked up and does not exist: it
        never arrived, so nothing was billed. Back to ``new``; the attempt is not counted
        (so the next one carries the same client-chosen id) nor charged to the budget."""
        self._move(
            key, _LOST, S.NEW, "take_never_created",
            {"last_error_code": None, "last_error": bounded(message)},
            {"message": bounded(message)},
            sql_sets=f"attempts = attempts - 1, {_UNAMBIGUOUS}", ledger=OUT.NOT_SENT,
        )

    def mark_not_sent(self, key: str, message: str) -> None:
        """The creation request certainly never reached the gateway (e.g. refused to connect,
        429): back to ``new``; the attempt is not counted nor charged to the budget."""
        self._move(
            key, _JUST_SUBMITTING, S.NEW, "take_not_sent",
            {"last_error": bounded(message)}, {"message": bounded(message)},
            sql_sets="attempts = attempts - 1",
        )

    def mark_ambiguous(self, key: str, message: str) -> None:
        """The creation was sent but its answer was lost: it may be rendering, and billed."""
        self._move(
            key, _JUST_SUBMITTING, S.AMBIGUOUS, "take_ambiguous",
            {"last_error_code": "ambiguous_submission", "last_error": bounded(message)},
            {"message": bounded(message)}, sql_sets="ambiguous_attempts = ambiguous_attempts + 1",
        )

    def mark_held(self, key: str) -> None:
        """Keep an ambiguous take aside instead of resubmitting it."""
        self._move(key, _CAN_HOLD, S.HELD, "take_held", {}, {})

    def mark_progress(
        self, key: str, gateway_status: str, progress: int | None, *, polled: bool = False
    ) -> None:
        """The gateway's status word and percentage (cheap: see the module docstring).

        ``polled=True`` also counts the status query that brought them (what
        :meth:`record_poll` does), in the same transaction: one commit per poll, not two.
        """
        with self._write(durable=False) as conn:
            row = conn.execute(
                "SELECT gateway_status FROM takes WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                raise UnknownTake(f"take {key} is not in the state store {self.where}")
            conn.execute(_PROGRESS_SQL, (gateway_status, progress, self._clock(), int(polled), key))
            if row[0] != gateway_status:
                insert_event(conn, self._clock(), key, "take_progress",
                             {"gateway_status": gateway_status, "progress": progress})

    def record_poll(self, key: str, count: int = 1) -> None:
        """Count a status query of the take's task (for the trace)."""
        with self._write(durable=False) as conn:
            cursor = conn.execute(
                "UPDATE takes SET polls = polls + ? WHERE key = ?", (count, key)
            )
            if cursor.rowcount == 0:
                raise UnknownTake(f"take {key} is not in the state store {self.where}")

    def mark_completed(
        self, key: str, result_url: str, link_expires_at: float | None = None
    ) -> None:
        """The gateway finished it: the result URL is known (also a refreshed link), kept
        redacted: a provider may put the key in it (the client keeps the real link).

        Not fsynced on its own (``synchronous=NORMAL``): a crash that loses it leaves the take
        ``submitted``, and the next run asks the gateway again, which answers the same URL.
        The ``mark_done`` that follows a download is a full commit, and a WAL sync covers
        every commit before it, so the order on disk is never broken.
        """
        self._move(
            key, _CAN_COMPLETE, S.COMPLETED, "take_completed",
            {"result_url": redact(result_url), "link_expires_at": link_expires_at,
             "gateway_status": "completed", "progress": 100, "failure_kind": None},
            {"link_expires_at": link_expires_at},
            sql_sets="completed_at = COALESCE(completed_at, ?)", sql_params=(self._clock(),),
            durable=False,
        )

    def mark_downloading(self, key: str) -> None:
        """A download into the take's ``.part`` file starts (not fsynced: see mark_completed)."""
        self._move(key, _CAN_DOWNLOAD, S.DOWNLOADING, "take_downloading", {}, {},
                   durable=False)

    def mark_failed(self, key: str, kind: str, code: str | None, message: str) -> None:
        """The take failed; ``kind`` is a :class:`FailureKind` value.

        From ``submitting`` this means the gateway *answered* with a refusal (400, 402…): the
        attempt is not billed. A creation whose answer was lost is :meth:`mark_ambiguous`.
        """
        kind = FailureKind(kind).value
        self._move(
            key, _ANY_BUT_DONE, S.FAILED, "take_failed",
            {"failure_kind": kind, "last_error_code": code, "last_error": bounded(message)},
            {"kind": kind, "code": code, "message": bounded(message)},
        )

    def mark_done(
        self, key: str, output_path: str | Path, size: int, sha256: str,
        verified_duration: float | None = None, *, video: Mapping[str, Any] | None = None,
    ) -> None:
        """Downloaded, verified and in place: nothing more to do for this fingerprint.

        ``video``: what the file really is (:func:`runner.media.observed.video_facts`).
        """
        self._move(
            key, _CAN_FINISH, S.DONE, "take_done",
            {"output_path": str(output_path), "size": size, "sha256": sha256,
             "verified_duration": verified_duration, "downloaded_at": self._clock(),
             "video": None if video is None else json.dumps(dict(video), sort_keys=True),
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

    # ----------------------------------------------------------------- the checked move
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
        ledger: AttemptOutcome | None = None,
    ) -> None:
        """Check the transition, update the take, log the event (``ledger``: the outcome of
        the take's last attempt, when the move decides it otherwise than by its statuses).

        The check is the UPDATE's own ``WHERE key = ? AND status IN (...)``: one statement
        where there were two, the status read only when no row changed (to tell an unknown
        take from a forbidden move) or when the ledger needs the status being left.
        """
        values = dict(sets)
        if to is not None:
            values["status"] = to.value
        values["updated_at"] = self._clock()
        sql = _move_sql(tuple(values), sql_sets, allowed)
        params = (*values.values(), *sql_params, key)
        with self._write(durable=durable) as conn:
            old: TakeStatus | None = None
            if to is S.FAILED or to is S.NEW:  # the ledger's outcome depends on the old status
                old = self._status_of(conn, key)
                if old not in allowed:
                    raise StateError(f"take {key}: cannot go from {old.value} to {to.value}")
                conn.execute(sql, params)
            elif conn.execute(sql, params).rowcount != 1:
                raise self._refused(conn, key, to.value if to else event)
            insert_event(conn, self._clock(), key, event, details)
            self._after_move(conn, key, old, to, values, ledger)

    def _admit_submitting(self, conn: Connection, key: str) -> None:
        """May this store's writer create ``key`` now? (A team's store checks its claim.)"""

    def _check_cap(self, conn: Connection, unit: str, estimate: float | None,
                   cap: float) -> None:
        """:class:`BudgetRefused` when the ledger plus ``estimate`` would pass ``cap``; inside
        the intent's own transaction (one writer on SQLite; a team's store locks first)."""
        committed = committed_of(conn.execute(COMMITTED_SQL)).get(unit, 0.0)
        if committed + (estimate or 0.0) > cap + 1e-9:
            raise BudgetRefused(committed, estimate, cap)

    def _after_move(
        self, conn: Connection, key: str, old: TakeStatus | None,
        to: TakeStatus | None, values: Mapping[str, Any], ledger: AttemptOutcome | None = None,
    ) -> None:
        """Keep the ``attempts`` ledger (the budget's source of truth) in step.

        ``old`` is known when ``to`` is failed or new (:meth:`_move` reads it then).
        """
        if ledger is not None:
            outcome: AttemptOutcome | None = ledger
        elif to is S.SUBMITTED:
            outcome = OUT.SUBMITTED
        elif to is S.AMBIGUOUS:
            outcome = OUT.AMBIGUOUS
        elif to is S.FAILED or to is S.NEW:
            outcome = None
            if old is S.SUBMITTING:
                outcome = OUT.REFUSED if to is S.FAILED else OUT.NOT_SENT
        else:
            return
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


_move_sql_cache: dict[tuple[tuple[str, ...], str, frozenset[TakeStatus]], str] = {}


def _move_sql(names: tuple[str, ...], sql_sets: str, allowed: frozenset[TakeStatus]) -> str:
    """The checked UPDATE of a move, built once per shape (a dozen shapes in all)."""
    key = (names, sql_sets, allowed)
    sql = _move_sql_cache.get(key)
    if sql is None:
        assignments = ", ".join(f"{name} = ?" for name in names)
        if sql_sets:
            assignments += ", " + sql_sets
        # OR, not IN: sqlite builds a throw-away index for an IN list of several values,
        # which made the UPDATE cost more than the SELECT it replaces.
        statuses = " OR ".join(f"status = '{status.value}'" for status in sorted(allowed))
        sql = f"UPDATE takes SET {assignments} WHERE key = ? AND ({statuses})"
        _move_sql_cache[key] = sql
    return sql
