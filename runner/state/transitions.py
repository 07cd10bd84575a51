"""The moves of a take from one status to the next: one committed transaction and one event each.

Each move states the statuses it may start from, so that a scheduler bug (downloading a take
that was never submitted, resubmitting one that has a task id) fails loudly in tests instead of
silently paying twice. The ``attempts`` table is kept in step: it is the budget's ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import StateError
from runner.redact import redact, redact_value
from runner.state.base import S, StoreBase, UnknownTake, dumps
from runner.state.records import FailureKind

_ANY_BUT_DONE = frozenset(S) - {S.DONE}
_CAN_RESET = frozenset(S) - {S.DONE, S.SUBMITTING}


class Transitions(StoreBase):
    """``mark_*`` methods of :class:`runner.state.StateStore`."""

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
                (attempt, dumps(redact_value(dict(payload_redacted))), estimated_credits,
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
                raise UnknownTake(f"take {key} is not in the state store {self.path}")
            conn.execute(
                "UPDATE takes SET gateway_status = ?, progress = ?, updated_at = ?,"
                " polls = polls + ? WHERE key = ?",
                (gateway_status, progress, self._clock(), int(polled), key),
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
        """The gateway finished it: the result URL is known (also a refreshed link).

        Not fsynced on its own (``synchronous=NORMAL``): a crash that loses it leaves the take
        ``submitted``, and the next run asks the gateway again, which answers the same URL.
        The ``mark_done`` that follows a download is a full commit, and a WAL sync covers
        every commit before it, so the order on disk is never broken.
        """
        self._move(
            key,
            frozenset({S.SUBMITTED, S.COMPLETED, S.DOWNLOADING, S.FAILED}),
            S.COMPLETED, "take_completed",
            {"result_url": result_url, "link_expires_at": link_expires_at,
             "gateway_status": "completed", "progress": 100, "failure_kind": None},
            {"link_expires_at": link_expires_at},
            sql_sets="completed_at = COALESCE(completed_at, ?)", sql_params=(self._clock(),),
            durable=False,
        )

    def mark_downloading(self, key: str) -> None:
        """A download into the take's ``.part`` file starts (not fsynced: see mark_completed)."""
        self._move(key, frozenset({S.COMPLETED, S.DOWNLOADING, S.FAILED}), S.DOWNLOADING,
                   "take_downloading", {}, {}, durable=False)

    def mark_failed(self, key: str, kind: str, code: str | None, message: str) -> None:
        """The take failed; ``kind`` is a :class:`FailureKind` value.

        From ``submitting`` this means the gateway *answered* with a refusal (400, 402…): the
        attempt is not billed. A creation whose answer was lost is :meth:`mark_ambiguous`.
        """
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
