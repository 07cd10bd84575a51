"""A lost store rebuilt from the output folder, before anything is created.

The store is a single file; the output folder holds a second copy of what matters for money:
a sidecar beside each verified video (its take, fingerprint, task id, credits and SHA-256:
:mod:`runner.state.outputs`) and a journal of the creations that may be in flight
(:mod:`runner.state.intents`). A store that is missing or empty (0 bytes) is rebuilt from them
by the run that finds it so; a damaged one is refused (:class:`~runner.state.base.StoreDamaged`)
until ``shotrun store rebuild`` sets it aside and does the same. Nothing is sent to rebuild.

What a rebuilt store says, per take:
- a sidecar whose video is there with the recorded size and hash: **done** (adopted);
- a sidecar whose video is missing or changed, with a task id: **submitted** (the run polls
  the task and downloads it again while the provider serves it; marked ``output_lost`` as
  :func:`runner.state.ondisk.mark_output_lost` does, so that a task gone at the provider
  needs ``--retry-failed``, never a resubmission unasked);
- an intent not superseded by its sidecar (same fingerprint, an attempt at least as late)
  with a task id: **submitted** (collected, not created; one its task finished for, the
  take collectable, is marked ``output_lost`` too);
- an intent without a task id: **submitting**, which the run's sync turns into an ambiguous
  creation, as for a run killed then; at Kling the intent's ``external_task_id`` (made from
  the salt the intent carries, restored here) lets the run look it up instead.
The ``attempts`` ledger gets a row per take so found, so the budget counts what was spent;
the take's earlier attempts (its attempt number minus one) are counted ambiguous: the folder
cannot tell a lost answer or a failed task (maybe billed) from a refusal (not billed), and a
take counted so is held rather than resubmitted twice, as today's rules do.
The kept renders under ``<shot>/history/`` (:mod:`runner.state.kept`) were paid too: their sidecars
add rows to the ledger only, so the lifetime budget counts them after a rebuild as before.
What the folder cannot tell (failures, picks, notes, uploads) starts afresh.

The rebuild is built in a temporary file and renamed into place: a run killed during it
leaves the store missing still, never an empty store that would pass for a healthy one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from runner.core.errors import StateError
from runner.core.fsutil import fsync_dir, fsync_file, hash_file
from runner.core.isotime import epoch_from_iso
from runner.core.money import CREDITS
from runner.state import dbfile as schema
from runner.state.base import (
    StoreDamaged,
    check_header,
    dumps,
    insert_event,
    take_writer_lock,
)
from runner.state.decide import OUTPUT_LOST
from runner.state.intents import Intent, amount, read_intents, recorded_unit
from runner.state.outputs import HISTORY_DIR
from runner.state.records import AttemptOutcome, TakeStatus
from runner.state.sql import Connection
from runner.state.store import StateStore

log = structlog.get_logger()

_TAKE_FILE = re.compile(r"take-([1-9][0-9]{0,8})\.json")
MISSING, EMPTY, PRESENT = "missing", "empty", "present"
_WAL_HEADER = 32  # a write-ahead log this long holds no frame


def condition(path: Path) -> str:
    """Whether the store at ``path`` is missing, empty (0 bytes) or present."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return MISSING
    return EMPTY if size == 0 else PRESENT


@dataclass
class Rebuilt:
    """What a rebuild found: take keys per what the rebuilt store says of them."""

    done: list[str] = field(default_factory=list)
    to_collect: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.done) + len(self.to_collect) + len(self.ambiguous)

    def describe(self) -> str:
        """One line: ``3 done and verified, 1 to collect by its task id, 1 in flight
        unanswered (counted ambiguous)``."""
        parts = [f"{len(self.done)} done and verified"]
        if self.to_collect:
            parts.append(f"{len(self.to_collect)} to collect by its task id")
        if self.ambiguous:
            parts.append(f"{len(self.ambiguous)} in flight unanswered (counted ambiguous)")
        return ", ".join(parts)


@dataclass
class _Row:
    """One take's row in the rebuilt store, and its attempt in the ledger."""

    key: str
    shot_id: str
    take: int
    status: TakeStatus
    fingerprint: str
    attempts: int
    tags: list[str] = field(default_factory=list)
    task_id: str | None = None
    payload: Any = None
    credits_estimated: float | None = None
    credits_reserved: float | None = None
    output_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    verified_duration: float | None = None
    video: Any = None
    submitted_at: float | None = None
    completed_at: float | None = None
    downloaded_at: float | None = None
    unit: str = CREDITS  # of the credits figures; a file from before units: the gateway's
    last_error_code: str | None = None


def _sidecars(output_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(video, sidecar data) of each ``<shot>/take-<n>.json`` naming its own take."""
    try:
        with os.scandir(output_dir) as found:
            folders = sorted((entry for entry in found if entry.is_dir(follow_symlinks=False)
                              and not entry.name.startswith(".")), key=lambda entry: entry.name)
    except FileNotFoundError:
        return
    for folder in folders:
        try:
            with os.scandir(folder.path) as entries:
                names = sorted(entry.name for entry in entries
                               if _TAKE_FILE.fullmatch(entry.name))
        except OSError as exc:  # a folder that cannot be read holds nothing to adopt
            log.warning("shot_folder_unreadable", folder=folder.path, error=str(exc))
            continue
        for name in names:
            path = Path(folder.path, name)
            try:
                data = json.loads(path.read_bytes())
            except (OSError, ValueError):
                log.warning("sidecar_unreadable", sidecar=str(path))
                continue
            take = int(_TAKE_FILE.fullmatch(name).group(1))  # type: ignore[union-attr]
            if _names_take(data, folder.name, take):
                yield path.with_suffix(".mp4"), data


def _names_take(data: Any, shot: str, take: int) -> bool:
    """The sidecar data names its own take, ``<shot>/take-<take>``, and a fingerprint."""
    return (isinstance(data, dict) and data.get("shot") == shot and data.get("take") == take
            and data.get("id") == f"{shot}/take-{take}"
            and isinstance(data.get("fingerprint"), str)
            and data.get("output") == f"take-{take}.mp4")


def _kept_sidecars(output_dir: Path) -> Iterator[dict[str, Any]]:
    """The sidecar data of each kept render, ``<shot>/history/<fp12>[-n]/take-<n>.json``:
    renders paid for, then replaced by a newer one (:mod:`runner.state.kept`)."""
    for history in sorted(output_dir.glob(f"*/{HISTORY_DIR}/*/take-*.json")):
        found = _TAKE_FILE.fullmatch(history.name)
        shot = history.parent.parent.parent.name
        if found is None or shot.startswith("."):
            continue
        try:
            data = json.loads(history.read_bytes())
        except (OSError, ValueError):
            log.warning("sidecar_unreadable", sidecar=str(history))
            continue
        if _names_take(data, shot, int(found.group(1))):
            yield data


def _verified(video: Path, data: dict[str, Any], *, hashed: bool = True) -> bool:
    """The video is there with the sidecar's size and SHA-256 (``hashed=False``: its size
    only, for a preview that must stay fast)."""
    try:
        if os.stat(video).st_size != data.get("size"):
            return False
        if not hashed:
            return True
        digest, _ = hash_file(video)
    except OSError:
        return False
    return digest == data.get("sha256")


def _from_sidecar(video: Path, data: dict[str, Any], *, hashed: bool = True) -> _Row | None:
    task_id = data.get("task_id") if isinstance(data.get("task_id"), str) else None
    attempts = data.get("attempts")
    credits: dict[str, Any] = data["credits"] if isinstance(data.get("credits"), dict) else {}
    tags = data.get("tags")
    row = _Row(
        key=str(data["id"]), shot_id=str(data["shot"]), take=int(data["take"]),
        status=TakeStatus.DONE, fingerprint=str(data["fingerprint"]),
        attempts=attempts if type(attempts) is int and attempts > 0 else 1,
        tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        task_id=task_id, payload=data.get("request") if isinstance(data.get("request"), dict)
        else None,
        credits_estimated=amount(credits.get("estimated")),
        credits_reserved=amount(credits.get("reserved")),
        submitted_at=epoch_from_iso(data.get("submitted")),
        completed_at=epoch_from_iso(data.get("completed")),
        unit=recorded_unit(credits.get("unit")) or CREDITS,
    )
    if _verified(video, data, hashed=hashed):
        row.output_path = str(video)
        row.size = int(data["size"])
        row.sha256 = str(data["sha256"])
        row.verified_duration = amount(data.get("verified_duration"))
        row.video = data.get("video") if isinstance(data.get("video"), dict) else None
        row.downloaded_at = epoch_from_iso(data.get("downloaded"))
        return row
    if task_id is None:
        log.warning("sidecar_without_output", video=str(video))
        return None
    row.status = TakeStatus.SUBMITTED  # its task is asked again: a fresh link, a new download
    row.last_error_code = OUTPUT_LOST  # done once: gone at the provider, never resubmitted
    return row


def _from_intent(intent: Intent) -> _Row:
    return _Row(
        key=intent.key, shot_id=intent.shot_id, take=intent.take,
        status=TakeStatus.SUBMITTED if intent.task_id else TakeStatus.SUBMITTING,
        fingerprint=intent.fingerprint, attempts=intent.attempt, task_id=intent.task_id,
        credits_estimated=intent.estimate, credits_reserved=intent.credits_reserved,
        submitted_at=intent.at if intent.task_id else None,
        unit=intent.unit or CREDITS,
        # A finished task whose result was not saved: as for a lost file (never resent).
        last_error_code=OUTPUT_LOST if intent.finished and intent.task_id else None,
    )


@dataclass(frozen=True)
class _Paid:
    """A kept render's paid task: a row of the ``attempts`` ledger only (its take is
    rendered otherwise now), so that the budget still counts what it cost."""

    key: str
    attempt: int
    fingerprint: str
    task_id: str
    credits_estimated: float | None
    credits_reserved: float | None
    submitted_at: float | None
    unit: str


def _kept_paid(output_dir: Path, rows: list[_Row]) -> list[_Paid]:
    """The paid tasks of the kept renders, each once, none a row of ``rows`` holds."""
    seen = {row.task_id for row in rows if row.task_id is not None}
    paid: list[_Paid] = []
    for data in _kept_sidecars(output_dir):
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or task_id in seen:
            continue
        seen.add(task_id)
        credits = data["credits"] if isinstance(data.get("credits"), dict) else {}
        attempt = data.get("attempts")
        paid.append(_Paid(
            key=str(data["id"]), fingerprint=str(data["fingerprint"]), task_id=task_id,
            attempt=attempt if type(attempt) is int and attempt > 0 else 1,
            credits_estimated=amount(credits.get("estimated")),
            credits_reserved=amount(credits.get("reserved")),
            submitted_at=epoch_from_iso(data.get("submitted")),
            unit=recorded_unit(credits.get("unit")) or CREDITS))
    return paid


def gather(output_dir: Path, *, hashed: bool = True) -> tuple[list[_Row], str | None]:
    """The rows a rebuilt store holds, and the salt of the intents' client-chosen ids."""
    rows: dict[str, _Row] = {}
    for video, data in _sidecars(output_dir):
        row = _from_sidecar(video, data, hashed=hashed)
        if row is not None:
            rows[row.key] = row
    salt: str | None = None
    latest = -1.0
    for intent in read_intents(output_dir):
        if intent.salt is not None and intent.at >= latest:
            salt, latest = intent.salt, intent.at
        known = rows.get(intent.key)
        if (known is not None and known.fingerprint == intent.fingerprint
                and known.attempts >= intent.attempt):
            continue  # settled: its sidecar is the later word
        rows[intent.key] = _from_intent(intent)
    return sorted(rows.values(), key=lambda row: row.key), salt


_INSERT_TAKE = (
    "INSERT INTO takes (key, shot_id, take, status, fingerprint, tags, task_id,"
    " attempts, ambiguous_attempts, payload, credits_estimated, credits_reserved,"
    " output_path, size, sha256,"
    " verified_duration, video, gateway_status, progress, submitting_at, submitted_at,"
    " completed_at, downloaded_at, created_at, updated_at, unit, last_error_code)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?)"
)
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (key, attempt, fingerprint, outcome, task_id, credits_estimated,"
    " credits_reserved, started_at, ended_at, unit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _write_rows(conn: Connection, rows: list[_Row], salt: str | None,
                now: float, found: Rebuilt, kept: list[_Paid]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    # First, so that each take's own attempt stays its latest row (the one moves update).
    conn.executemany(_INSERT_ATTEMPT, [
        (paid.key, paid.attempt, paid.fingerprint, "submitted", paid.task_id,
         paid.credits_estimated, paid.credits_reserved, paid.submitted_at or now, now,
         paid.unit) for paid in kept])
    for row in rows:
        in_flight = row.status is TakeStatus.SUBMITTED and row.output_path is None
        conn.execute(_INSERT_TAKE, (
            row.key, row.shot_id, row.take, row.status, row.fingerprint, dumps(row.tags),
            row.task_id, row.attempts, row.attempts - 1,
            None if row.payload is None else dumps(row.payload),
            row.credits_estimated, row.credits_reserved, row.output_path, row.size,
            row.sha256, row.verified_duration,
            None if row.video is None else json.dumps(row.video, sort_keys=True),
            "pending" if in_flight else ("completed" if row.status is TakeStatus.DONE else None),
            0 if in_flight else (100 if row.status is TakeStatus.DONE else None),
            now if row.status is TakeStatus.SUBMITTING else None,
            row.submitted_at, row.completed_at, row.downloaded_at, now, now, row.unit,
            row.last_error_code,
        ))
        # Earlier attempts (a sidecar's or intent's attempt number minus one) may have been
        # billed (a lost answer, a task that failed) or not (a refusal): the folder cannot
        # tell, so they count as what may have been billed: ambiguous, at the estimate.
        conn.executemany(_INSERT_ATTEMPT, [
            (row.key, earlier, row.fingerprint, AttemptOutcome.AMBIGUOUS, None,
             row.credits_estimated, None, now, now, row.unit)
            for earlier in range(1, row.attempts)])
        outcome = (AttemptOutcome.SUBMITTING if row.status is TakeStatus.SUBMITTING
                   else AttemptOutcome.SUBMITTED)
        conn.execute(_INSERT_ATTEMPT, (
            row.key, row.attempts, row.fingerprint, outcome, row.task_id,
            row.credits_estimated, row.credits_reserved, row.submitted_at or now,
            None if outcome is AttemptOutcome.SUBMITTING else now, row.unit,
        ))
        {TakeStatus.DONE: found.done, TakeStatus.SUBMITTED: found.to_collect,
         TakeStatus.SUBMITTING: found.ambiguous}[row.status].append(row.key)
    # The salt of the ids the intents' creations carry (Kling): kept, so that a creation
    # whose answer was lost is looked up by the id it was sent with. Otherwise a fresh one.
    conn.execute("INSERT INTO meta (name, value) VALUES ('client_id_salt', ?)",
                 (salt if salt is not None else secrets.token_hex(16),))
    insert_event(conn, now, None, "store_rebuilt",
                 {"done": len(found.done), "to_collect": len(found.to_collect),
                  "ambiguous": len(found.ambiguous)})
    conn.execute("COMMIT")


@contextmanager
def built_aside(path: Path, label: str) -> Iterator[sqlite3.Connection]:
    """A new store for ``path``, built in ``<name>.<label>`` beside it and renamed into place
    once whole (the caller holds the writer lock).

    Yields the new file's connection, at the current schema, for the caller to fill in its
    own transaction. A process killed before the rename leaves the store as it was (missing
    still, never a half-filled store that would pass for a healthy one); an error removes
    the new file and propagates.
    """
    temp = path.with_name(f"{path.name}.{label}")
    _remove(temp)
    try:
        schema.create_private_file(temp)
        conn = schema.connect(temp, readonly=False)
        try:
            schema.migrate(conn, temp)
            yield conn
            # Everything into the main file, which alone is renamed into place.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
        fsync_file(temp)
        os.replace(temp, path)
        fsync_dir(path.parent)
    except BaseException:
        _remove(temp)
        raise


def _remove(path: Path) -> None:
    """``path`` and its sqlite companions deleted (those that are there)."""
    for stale in _companions(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)


def rebuild_into(path: Path, output_dir: Path, *, clock: Callable[[], float] = time.time,
                 hashed: bool = True) -> Rebuilt | None:
    """Build the store at ``path`` (which must not be in use) from ``output_dir``.

    None when the folder holds nothing to rebuild from (no sidecar, no intent): the caller
    then creates the store as for a first run. The caller holds the writer lock.
    ``hashed=False`` trusts a video of the recorded size without hashing it (a preview).
    """
    rows, salt = gather(output_dir, hashed=hashed)
    if not rows:
        return None
    found = Rebuilt()
    try:
        with built_aside(path, "rebuilding") as conn:
            _write_rows(conn, rows, salt, clock(), found, _kept_paid(output_dir, rows))
    except (OSError, sqlite3.Error) as exc:
        problem = schema.sqlite_problem(exc) if isinstance(exc, sqlite3.Error) else \
            exc.strerror or str(exc)
        raise StateError(f"the state store {path} could not be rebuilt ({problem}); nothing "
                         "was sent; free some space or fix the folder and run again (rebuilding "
                         "spends nothing)") from exc
    log.info("store_rebuilt", path=str(path), done=len(found.done),
             to_collect=len(found.to_collect), ambiguous=len(found.ambiguous))
    return found


def _companions(path: Path) -> tuple[Path, ...]:
    """``path`` and sqlite's files beside it (``-wal``, ``-shm``, ``-journal``)."""
    return (path, *(path.with_name(path.name + suffix)
                    for suffix in ("-wal", "-shm", "-journal")))


def stamp() -> str:
    """``20261207T101500Z``: the suffix of a file set aside."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def set_aside(path: Path, label: str) -> Path:
    """Rename the store and its sqlite companions to ``<name>.<label>-<stamp>`` (+ their
    suffix, so sqlite opens the set together); return the store's new name."""
    target = path.with_name(f"{path.name}.{label}-{stamp()}")
    while any(p.exists() for p in _companions(target)):
        target = path.with_name(f"{target.name}-{secrets.token_hex(2)}")
    for source, dest in zip(_companions(path), _companions(target), strict=True):
        with contextlib.suppress(FileNotFoundError):
            os.rename(source, dest)
    fsync_dir(path.parent)
    return target


def clear_orphans(path: Path) -> Path | None:
    """A missing or empty store's leftover ``-wal``/``-shm``/``-journal`` cleared away.

    sqlite would replay an old write-ahead log onto the new file (a store deleted after a
    crash leaves its WAL behind): half an old database. The shared-memory index (``-shm``)
    and a log holding no frame are only caches and go; a log with frames is set aside
    (``<name>.orphaned-<stamp>-wal``), never deleted. Returns where, when one was.
    """
    for cache in (path.with_name(path.name + "-shm"), path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            if cache.name.endswith("-shm") or os.stat(cache).st_size <= _WAL_HEADER:
                os.unlink(cache)
    leftovers = [p for p in _companions(path)[1:] if p.exists()]
    if not leftovers:
        return None
    kept = set_aside(path, "orphaned")
    with contextlib.suppress(FileNotFoundError):
        if os.stat(kept).st_size == 0:  # the empty store itself: nothing worth keeping
            os.unlink(kept)
    return kept


@dataclass(frozen=True)
class Opened:
    """The writer's store, and what was rebuilt on the way (None: it was there)."""

    store: StateStore
    condition: str  # MISSING, EMPTY or PRESENT, as found
    rebuilt: Rebuilt | None


def open_or_rebuild(path: Path, output_dir: Path, *, command: str,
                    clock: Callable[[], float] = time.time) -> Opened:
    """Open the store as the writer; a missing or empty one rebuilt first from the folder.

    The writer lock is taken before the store is looked at: a store deleted while a run
    holds it is refused as locked, never rebuilt under that run. A damaged store is refused
    with :class:`StoreDamaged` naming ``command`` (the rebuild command for this manifest).
    """
    lock = take_writer_lock(path)
    try:
        found = condition(path)
        rebuilt = None
        if found != PRESENT:
            clear_orphans(path)
            rebuilt = rebuild_into(path, output_dir, clock=clock)
        try:
            store = StateStore.open_locked(path, lock, clock=clock)
        except StoreDamaged as exc:
            raise exc.naming(command) from exc
    except BaseException:
        lock.release()
        raise
    return Opened(store, found, rebuilt)


def rebuild_damaged(path: Path, output_dir: Path, *, force: bool = False,
                    clock: Callable[[], float] = time.time) -> tuple[Path | None, Rebuilt]:
    """``shotrun store rebuild``: set the store aside and rebuild it from the folder.

    Returns where the old store was kept (None when there was none) and what was found.
    A store that opens and passes its check is left alone unless ``force``
    (:class:`StateError`): rebuilding forgets what only it knows (failures, picks, notes).
    """
    lock = take_writer_lock(path)
    try:
        kept: Path | None = None
        if condition(path) == PRESENT:
            healthy = _healthy(path)
            if healthy and not force:
                raise StateError(
                    f"state store {path} is not damaged: nothing to rebuild (--force "
                    "rebuilds it anyway, forgetting failures, picks and notes)")
            kept = set_aside(path, "replaced" if healthy else "damaged")
        else:
            clear_orphans(path)
        rebuilt = rebuild_into(path, output_dir, clock=clock) or Rebuilt()
        StateStore.open_locked(path, lock, clock=clock).close()  # the schema, checked
    except BaseException:
        lock.release()
        raise
    return kept, rebuilt


def _healthy(path: Path) -> bool:
    """The store is an SQLite file that passes its check (read-only: the lock is held)."""
    try:
        check_header(path)
        conn = schema.connect(path, readonly=True)
    except StateError:
        return False
    try:
        return bool(conn.execute("PRAGMA quick_check").fetchone()[0] == "ok")
    except sqlite3.Error:
        return False
    finally:
        conn.close()


@contextmanager
def readable_store(path: Path, output_dir: Path) -> Iterator[Path | None]:
    """The store a preview (``plan``) reads: ``path`` when it is there; when it is missing
    or empty, a temporary copy rebuilt from the output folder as the next run would rebuild
    it (videos checked by size only, so that it stays fast; removed afterwards); None when
    there is nothing to read. Nothing under ``output_dir`` is written."""
    if condition(path) == PRESENT:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="shotrun-preview-") as folder:  # mode 0700
        temp = Path(folder) / path.name
        try:
            found = rebuild_into(temp, output_dir, hashed=False)
        except (OSError, sqlite3.Error, StateError) as exc:
            log.warning("store_preview_not_rebuilt", error=str(exc))
            found = None
        yield temp if found is not None else None
