"""The store as the run and ``status`` use it: sync, uploads, budget ledger and reading.

:class:`StateStore` is the one public class: :meth:`StateStore.open` for the run (the writer),
:meth:`StateStore.open_readonly` for ``status`` beside it. Its transitions (``mark_*``) live in
:mod:`runner.state.transitions`, its plumbing in :mod:`runner.state.base`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Collection, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from runner.core.bulk import paused_gc
from runner.core.model import Take
from runner.core.money import CREDITS
from runner.state import continuity
from runner.state import notes as notes_table
from runner.state import ondisk as restore
from runner.state.base import UnknownTake, log
from runner.state.continuity import Pick
from runner.state.decide import collectable
from runner.state.intents import COLLECTABLE_STATUS
from runner.state.notes import Note
from runner.state.protocol import Store
from runner.state.records import (
    RECORD_COLUMNS,
    RECORD_SELECT,
    Event,
    TakeOutput,
    TakePlan,
    TakeRecord,
    TakeStatus,
    UploadRecord,
    event_from_row,
    record_from_row,
)
from runner.state.sql import Connection
from runner.state.sync import sync_takes
from runner.state.trace import read_traces
from runner.state.transitions import COMMITTED_SQL, Transitions, committed_of

_SHOT_AND_TAKE = itemgetter(RECORD_COLUMNS.index("shot_id"), RECORD_COLUMNS.index("take"))


class StateStore(Transitions):
    """The durable record of a manifest's takes (see :mod:`runner.state` for the life cycle):
    the SQLite :class:`runner.state.protocol.Store`."""

    def sync(
        self,
        takes: Sequence[Take],
        fingerprint_payloads: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        retry_failed: bool = False,
        ambiguous: str = "resubmit",
    ) -> list[TakePlan]:
        """Record every take of the manifest and say what this run does with each, and why.

        Call it once, at the start of a run, with the takes the run covers and, per key, the
        canonical fingerprint payload (``build_payload(request, fingerprint_resolver, wire)``):
        comparing it with the stored one gives the reason for a re-render. A take left
        ``submitting`` by a run that died is an ambiguous submission now. A take whose
        fingerprint changed is moved to ``take_history`` and starts afresh; its files are
        moved by :func:`runner.state.outputs.archive_previous` (``plan.previous`` is the old
        record).
        ``ambiguous`` is "resubmit" (once per fingerprint) or "hold".
        """
        if ambiguous not in ("resubmit", "hold"):
            raise ValueError(f"ambiguous must be 'resubmit' or 'hold', not {ambiguous!r}")
        with paused_gc(), self._write() as conn:  # 20,000 records and plans: see runner.core.bulk
            self._begin_sync(conn)
            plans = sync_takes(
                conn, takes, fingerprint_payloads or {}, self._clock,
                retry_failed=retry_failed, ambiguous=ambiguous,
                held_elsewhere=lambda: self._busy(conn),
            )
        log.info("state_synced", takes=len(plans))
        return plans

    def _begin_sync(self, conn: Connection) -> None:
        """First step of ``sync``'s transaction (the file's writer lock already serializes)."""

    def _busy(self, conn: Connection) -> Collection[str]:
        """Takes other live runners hold, which ``sync`` leaves alone (none: one writer)."""
        return ()

    def get_upload(self, sha256: str) -> UploadRecord | None:
        """The upload of the file with this content, if one was recorded."""
        rows = self._rows("SELECT * FROM uploads WHERE sha256 = ?", (sha256,))
        if not rows:
            return None
        row = rows[0]
        return UploadRecord(row["sha256"], row["url"], row["expires_at"], row["size"],
                            row["mime"], row["uploaded_at"])

    def put_upload(
        self, sha256: str, url: str, expires_at: float | None, size: int | None = None,
        mime: str | None = None,
    ) -> None:
        """Remember an upload so that the same content is not uploaded again before expiry."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO uploads (sha256, url, expires_at, size, mime, uploaded_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET"
                " url = excluded.url, expires_at = excluded.expires_at, size = excluded.size,"
                " mime = excluded.mime, uploaded_at = excluded.uploaded_at",
                (sha256, url, expires_at, size, mime, self._clock()),
            )
            self._event(conn, None, "file_uploaded", sha256=sha256, expires_at=expires_at,
                        size=size, mime=mime)

    def credits_committed(self, unit: str = CREDITS) -> float:
        """What was reserved in ``unit`` over the manifest's whole life, across runs and
        fingerprints (never a sum across units: runner.core.money).

        Attempts with a task id count the provider's ``credits_reserved`` (else the estimate);
        attempts still in flight or ambiguous count their estimate: they may have been billed.
        """
        return self.committed_by_unit().get(unit, 0.0)

    def committed_by_unit(self) -> dict[str, float]:
        """:meth:`credits_committed` of every unit the ledger holds, ``{unit: amount}``."""
        return committed_of(self._rows(COMMITTED_SQL))

    def statuses(self) -> dict[str, tuple[str, str]]:
        """Per take key, its status and fingerprint: what settling the intents asks
        (:func:`runner.state.intents.settle`). A failed take whose paid task may still hand
        over its result says ``collectable``: no sidecar holds its task id, so its intent
        must outlive the run for a lost store to collect it rather than pay again."""
        return {record.key: (COLLECTABLE_STATUS if collectable(record) else record.status.value,
                             record.fingerprint) for record in self.records()}

    def record(self, key: str) -> TakeRecord:
        """The current record of one take."""
        rows = self._rows(f"SELECT {RECORD_SELECT} FROM takes WHERE key = ?", (key,))
        if not rows:
            raise UnknownTake(f"take {key} is not in the state store {self.where}")
        return record_from_row(rows[0])

    def records(self) -> list[TakeRecord]:
        """Every take's current record, ordered by shot id and take number."""
        with paused_gc():
            rows = self._tuples(f"SELECT {RECORD_SELECT} FROM takes")
            rows.sort(key=_SHOT_AND_TAKE)  # in Python: sqlite sorted whole rows in a b-tree
            return [record_from_row(row) for row in rows]

    def shot_records(self, shot_id: str) -> list[TakeRecord]:
        """One shot's current records, by take number.

        For whoever needs one shot (choosing a continuity source as a run goes): filtering
        :meth:`records` built 20,000 records, a fifth of a second, each time.
        """
        rows = self._tuples(f"SELECT {RECORD_SELECT} FROM takes WHERE shot_id = ? ORDER BY take",
                            (shot_id,))
        return [record_from_row(row) for row in rows]

    def fingerprints(self) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """Per take key: the stored fingerprint and its payload (for ``plan``'s reasons)."""
        rows = self._rows("SELECT key, fingerprint, fingerprint_payload FROM takes")
        return {row[0]: (row[1], None if row[2] is None else json.loads(row[2])) for row in rows}

    def history(self, key: str | None = None) -> list[TakeRecord]:
        """Records replaced by a fingerprint change, oldest first."""
        sql = f"SELECT {RECORD_SELECT} FROM take_history"
        params: tuple[Any, ...] = ()
        if key is not None:
            sql += " WHERE key = ?"
            params = (key,)
        rows = self._rows(sql + " ORDER BY history_id", params)
        return [record_from_row(row) for row in rows]

    def events(self, key: str | None = None, *, since_id: int = 0) -> list[Event]:
        """Event rows (all, or one take's), oldest first; ``since_id`` to tail the log."""
        sql = "SELECT * FROM events WHERE id > ?"
        params: tuple[Any, ...] = (since_id,)
        if key is not None:
            sql += " AND key = ?"
            params = (since_id, key)
        rows = self._rows(sql + " ORDER BY id", params)
        return [event_from_row(row) for row in rows]

    def record_provider(self, provider: str) -> None:
        """Remember who the run renders with: a command that only reads the store (status,
        report, export) can then say when it reads the manifest for another provider (the
        provider is in every fingerprint, so every take would look changed)."""
        with self._write() as conn:
            conn.execute("INSERT INTO meta (name, value) VALUES ('provider', ?)"
                         " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (provider,))

    def last_provider(self) -> str | None:
        """The provider the last run rendered with (None: no run recorded one)."""
        rows = self._rows("SELECT value FROM meta WHERE name = 'provider'")
        return str(rows[0][0]) if rows else None

    def client_salt(self) -> str:
        """This store's own salt for the task ids shotrun chooses (the Kling API's
        ``external_task_id``, :func:`runner.scheduler.lost.client_task_id`).

        Kling keeps an id per account: without a salt, two projects (or one output folder
        wiped and rendered again) on one account would choose the same ids for the same
        takes, and a creation would "find" another project's task and adopt its old video.
        A random salt is made and committed durably the first time it is asked for, before
        any id is sent. A store from before salts, with creations already sent, keeps the
        empty salt: the ids its in-flight creations carry must stay the same.
        """
        if self._salt is not None:
            return self._salt
        rows = self._rows("SELECT value FROM meta WHERE name = 'client_id_salt'")
        if not rows:
            sent = self._rows("SELECT 1 FROM takes WHERE attempts > 0 LIMIT 1")
            made = "" if sent else secrets.token_hex(16)
            with self._write() as conn:
                conn.execute("INSERT INTO meta (name, value) VALUES ('client_id_salt', ?)"
                             " ON CONFLICT (name) DO NOTHING", (made,))
            rows = self._rows("SELECT value FROM meta WHERE name = 'client_id_salt'")
        self._salt = str(rows[0][0])
        return self._salt

    def stamp(self) -> str:
        """A short digest that changes whenever a take's record, a pick or a note changes.

        Every transition sets ``updated_at`` (and sync, a fingerprint change or a retag writes
        rows afresh), so the count, the latest and the sum of ``updated_at`` over the takes,
        and the same over the picks, tell "nothing happened" apart from "something did" in
        one pass over an index-free table (a few ms for 20,000 takes). The end of a run uses
        it to leave an up-to-date report alone.
        """
        with self._read() as conn:
            takes = tuple(conn.execute(
                "SELECT COUNT(*), MAX(updated_at), COALESCE(SUM(updated_at), 0) FROM takes"
            ).fetchone())
            chosen = tuple(conn.execute(
                "SELECT COUNT(*), MAX(picked_at), COALESCE(SUM(picked_at + take), 0) FROM picks"
            ).fetchone())
            noted = tuple(conn.execute(  # a reviewer's notes show on the page too
                "SELECT COUNT(*), MAX(noted_at), COALESCE(SUM(noted_at + length(text)), 0)"
                " FROM notes"
            ).fetchone())
        return hashlib.sha256(repr((takes, chosen, noted)).encode()).hexdigest()[:32]

    def totals(self) -> dict[str, Any]:
        """Counts per status, attempts, ambiguous submissions and credits committed."""
        with self._read() as conn:
            counts = {status.value: 0 for status in TakeStatus}
            for row in conn.execute("SELECT status, COUNT(*) FROM takes GROUP BY status"):
                counts[row[0]] = row[1]
            attempts = conn.execute(
                "SELECT COUNT(*), COUNT(CASE WHEN outcome = 'ambiguous' THEN 1 END) FROM attempts"
                " WHERE outcome != 'not_sent'"
            ).fetchone()
        return {
            "takes": sum(counts.values()),
            **counts,
            "attempts": int(attempts[0]),
            "ambiguous_submissions": int(attempts[1]),
            "credits_committed": self.credits_committed(),
            "committed": self.committed_by_unit(),
        }

    # ----------------------------------------------------------------- choices and files
    # The SQL of each lives beside its table (continuity, notes, restore, trace): these
    # methods are the Store Protocol's names for them.
    def picks(self) -> dict[str, Pick]:
        """Per shot id, the take a user picked (:func:`runner.state.continuity.picks`)."""
        return continuity.picks(self)

    def set_pick(self, shot_id: str, take: int, sha256: str | None) -> None:
        """Pick a take of a shot (:func:`runner.state.continuity.set_pick`)."""
        continuity.set_pick(self, shot_id, take, sha256)

    def frame_hashes(self) -> dict[str, dict[str, str]]:
        """Per take key, the source outputs its frames were cut from."""
        return continuity.frame_hashes(self)

    def record_frame_hashes(self, key: str, hashes: Mapping[str, str]) -> None:
        """Record the source outputs (shot id -> SHA-256) the take's frames were cut from."""
        continuity.record_frame_hashes(self, key, hashes)

    def source_changes(self, takes: Sequence[Take]) -> dict[str, str]:
        """:func:`runner.state.continuity.source_changes` (read-only, beside a live run)."""
        return continuity.source_changes(self, takes)

    def notes(self) -> dict[str, Note]:
        """Per take key, a reviewer's note (:func:`runner.state.notes.notes`)."""
        return notes_table.notes(self)

    def set_note(self, key: str, text: str, sha256: str | None) -> None:
        """Write (empty ``text``: remove) a reviewer's note about one take's output."""
        notes_table.set_note(self, key, text, sha256)

    def mark_restored(self, key: str, fingerprint: str, output_path: Path, sha256: str,
                      size: int, sidecar: dict[str, Any], *, reason: str) -> None:
        """:func:`runner.state.ondisk.mark_restored`."""
        restore.mark_restored(self, key, fingerprint, output_path, sha256, size, sidecar,
                              reason=reason)

    def mark_output_lost(self, key: str, problem: str, *, link_alive: bool,
                         message: str) -> str:
        """:func:`runner.state.ondisk.mark_output_lost`."""
        return restore.mark_output_lost(self, key, problem, link_alive=link_alive,
                                        message=message)

    def renders_cut_from(self, key: str, fingerprint: str,
                         sources: dict[str, str]) -> set[str]:
        """:func:`runner.state.ondisk.renders_cut_from`."""
        return restore.renders_cut_from(self, key, fingerprint, sources)

    def done_files(self) -> list[TakeOutput]:
        """:func:`runner.state.ondisk.done_files`."""
        return restore.done_files(self)

    def traces(self, output_dir: Path | None) -> tuple[list[dict[str, Any]], list[TakeOutput]]:
        """:func:`runner.state.trace.read_traces`."""
        return read_traces(self, output_dir)


_: type[Store] = StateStore  # mypy checks here that the SQLite store keeps the Protocol
