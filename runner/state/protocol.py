"""The store as its users see it: what a run, the views and the commands ask of it.

:class:`Store` is the seam between the durable state and everything above it. The run engine,
the scheduler's steps, the views (status, report, review, export, outlook) and the commands
type their store as a :class:`Store`, never as the SQLite class: a second implementation
(a shared PostgreSQL store for a team on one shot list) only has to provide these methods.
:class:`runner.state.StateStore` is today's, one SQLite file per output folder.

Nothing here is SQLite's: no connections, cursors, paths or pragmas, only takes, records,
plans and the values of :mod:`runner.state.records`. How a store is *opened* (a file and its
writer lock, a database URL) belongs to the implementation, as does anything only one of them
can answer (``StateStore.path``, ``StateStore.still_in_place``).

The promise every implementation keeps (the rule that makes resume safe): each ``mark_*``,
``set_*``, ``put_upload`` and ``sync`` call has committed when it returns, durably unless its
docstring says the gateway can tell it again (progress, completion, download start).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runner.core.model import Take
from runner.core.money import CREDITS
from runner.state.records import Event, TakeOutput, TakePlan, TakeRecord, UploadRecord

if TYPE_CHECKING:  # trace imports runner.media.observed, which imports runner.state (profile)
    from runner.state.continuity import Pick
    from runner.state.notes import Note


class Store(Protocol):
    """Every take of one manifest, where it is, what it cost, and what people chose of it."""

    # ----------------------------------------------------------------- the run's plan
    def sync(
        self,
        takes: Sequence[Take],
        fingerprint_payloads: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        retry_failed: bool = False,
        ambiguous: str = "resubmit",
    ) -> list[TakePlan]:
        """Record the manifest's takes; per take, what this run does with it and why."""
        ...

    # ----------------------------------------------------------------- a take's moves
    def mark_submitting(
        self, key: str, payload_redacted: Mapping[str, Any], estimated_credits: float | None,
        unit: str = CREDITS, *, account: str | None = None, cap: float | None = None,
    ) -> int:
        """The intent to create, committed before sending; the attempt number (with ``cap``:
        refused, :class:`runner.state.transitions.BudgetRefused`, past the shared budget)."""
        ...

    def mark_submitted(
        self, key: str, task_id: str, credits_reserved: float | None = None,
        estimated_time: float | None = None, *, found: bool = False,
    ) -> None:
        """The task id, committed the moment it arrives."""
        ...

    def mark_never_created(self, key: str, message: str) -> None:
        """A lost creation looked up and not found: back to new, the attempt uncounted."""
        ...

    def mark_not_sent(self, key: str, message: str) -> None:
        """The creation certainly never reached the provider: back to new."""
        ...

    def mark_ambiguous(self, key: str, message: str) -> None:
        """The creation was sent, its answer lost: it may be rendering, and billed."""
        ...

    def mark_held(self, key: str) -> None:
        """Keep an ambiguous take aside instead of resubmitting it."""
        ...

    def mark_progress(
        self, key: str, gateway_status: str, progress: int | None, *, polled: bool = False
    ) -> None:
        """The provider's status word and percentage (cheap, not durable on its own)."""
        ...

    def record_poll(self, key: str, count: int = 1) -> None:
        """Count status queries of the take's task."""
        ...

    def mark_completed(
        self, key: str, result_url: str, link_expires_at: float | None = None
    ) -> None:
        """The provider finished it: the (redacted) result URL and its lifetime."""
        ...

    def mark_downloading(self, key: str) -> None:
        """A download of the take's result starts."""
        ...

    def mark_failed(self, key: str, kind: str, code: str | None, message: str) -> None:
        """The take failed; ``kind`` is a :class:`runner.state.FailureKind` value."""
        ...

    def mark_done(
        self, key: str, output_path: str | Path, size: int, sha256: str,
        verified_duration: float | None = None, *, video: Mapping[str, Any] | None = None,
    ) -> None:
        """Downloaded, verified and in place."""
        ...

    def reset_for_retry(self, key: str) -> None:
        """Forget the current task: the take can be submitted anew."""
        ...

    def mark_restored(self, key: str, fingerprint: str, output_path: Path, sha256: str,
                      size: int, sidecar: dict[str, Any], *, reason: str) -> None:
        """A kept render of the take's current fingerprint is back in place: done."""
        ...

    def mark_output_lost(self, key: str, problem: str, *, link_alive: bool,
                         message: str) -> str:
        """A done take's file is missing or changed: done no more; the status it moved to."""
        ...

    def record_frame_hashes(self, key: str, hashes: Mapping[str, str]) -> None:
        """The source outputs (shot id -> SHA-256) the take's frames were cut from."""
        ...

    # ----------------------------------------------------------------- the run's memory
    def get_upload(self, sha256: str) -> UploadRecord | None:
        """The upload of the file with this content, if one was recorded."""
        ...

    def put_upload(
        self, sha256: str, url: str, expires_at: float | None, size: int | None = None,
        mime: str | None = None,
    ) -> None:
        """Remember an upload until its URL expires."""
        ...

    def client_salt(self) -> str:
        """This store's salt for the task ids shotrun chooses (made once, durably)."""
        ...

    def record_provider(self, provider: str) -> None:
        """Remember who the run renders with."""
        ...

    def last_provider(self) -> str | None:
        """The provider the last run rendered with."""
        ...

    def renders_cut_from(self, key: str, fingerprint: str,
                         sources: dict[str, str]) -> set[str]:
        """Kept renders of the take cut from exactly the source outputs ``sources``."""
        ...

    # ----------------------------------------------------------------- reading
    def record(self, key: str) -> TakeRecord:
        """The current record of one take (:class:`runner.state.UnknownTake` if none)."""
        ...

    def records(self) -> list[TakeRecord]:
        """Every take's current record, by shot id and take number."""
        ...

    def shot_records(self, shot_id: str) -> list[TakeRecord]:
        """One shot's current records, by take number."""
        ...

    def history(self, key: str | None = None) -> list[TakeRecord]:
        """Records replaced by a fingerprint change, oldest first."""
        ...

    def events(self, key: str | None = None, *, since_id: int = 0) -> list[Event]:
        """The event log (all, or one take's), oldest first."""
        ...

    def fingerprints(self) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """Per take key: the stored fingerprint and its payload."""
        ...

    def statuses(self) -> dict[str, tuple[str, str]]:
        """Per take key: its status and fingerprint."""
        ...

    def totals(self) -> dict[str, Any]:
        """Counts per status, attempts, ambiguous submissions and credits committed."""
        ...

    def stamp(self) -> str:
        """A digest that changes whenever a record, a pick or a note changes."""
        ...

    def credits_committed(self, unit: str = CREDITS) -> float:
        """What was reserved in ``unit`` over the manifest's whole life."""
        ...

    def committed_by_unit(self) -> dict[str, float]:
        """:meth:`credits_committed` of every unit, ``{unit: amount}``."""
        ...

    def done_files(self) -> list[TakeOutput]:
        """Every take recorded as done, with what checking its file needs."""
        ...

    def traces(self, output_dir: Path | None) -> tuple[list[dict[str, Any]], list[TakeOutput]]:
        """Every take's trace record (``status --json``) and what choosing needs."""
        ...

    # ----------------------------------------------------------------- people's choices
    def picks(self) -> dict[str, Pick]:
        """Per shot id, the take a user picked."""
        ...

    def set_pick(self, shot_id: str, take: int, sha256: str | None) -> None:
        """Pick a take of a shot (the output it had then: ``sha256``)."""
        ...

    def notes(self) -> dict[str, Note]:
        """Per take key, what a reviewer wrote about it."""
        ...

    def set_note(self, key: str, text: str, sha256: str | None) -> None:
        """Write (empty ``text``: remove) a reviewer's note about one take's output."""
        ...

    def frame_hashes(self) -> dict[str, dict[str, str]]:
        """Per take key: source shot id -> SHA-256 of the output its frames were cut from."""
        ...

    def source_changes(self, takes: Sequence[Take]) -> dict[str, str]:
        """Per done take cut from a source output no longer the chosen one: why."""
        ...

    # ----------------------------------------------------------------- life cycle
    def close(self) -> None:
        """Release the store (idempotent)."""
        ...
