"""Creations in flight, recorded beside the store so that losing the store loses no money.

The store commits the intent to create (``submitting``) before the request is sent, and a
run that dies then finds the take ambiguous (maybe billed). A store that is deleted or
emptied takes that knowledge with it: the next run would see a new take and pay again. So
the intent is also appended to a journal of its own, ``<output_dir>/.shotrun/intents.jsonl``,
and flushed (``fdatasync``) before the creation is sent. A line carries the take's key,
fingerprint and attempt, the estimate and, where the provider lets the client name its
tasks (Kling), the ``external_task_id`` the creation carries and the store's salt that made
it, so that a rebuilt store looks the task up by the same id. Later lines add the task id
when it arrives, or mark the attempt settled when it certainly created nothing (not sent,
refused). :mod:`runner.state.rebuild` folds the journal per take: the last intent of a key,
with what later lines say of that same attempt.

A journal rather than a file per take: one append and one flush per creation, where a file
per take cost a temporary file, a rename and two flushes (1.2 ms of CPU and 5 ms of wall
time per take against 0.05 and 0.15). The task id and the settled marks are appended without
a flush: a killed process leaves the page cache intact, and a power cut that loses one only
makes a rebuilt store count the take ambiguous, never new. A line cut short by a power cut
is skipped when read, and the next run starts its first line on a fresh one.

At the end of each run the journal is compacted (:func:`settle`): only the intents of takes
the store still has in flight (or does not know) are kept; none left, it is removed. A done
take's sidecar also supersedes its intent when the store is rebuilt, so a run killed before
the compaction leaves nothing wrong behind, only lines to drop.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from runner.core.errors import StateError
from runner.core.fsutil import atomic_write_bytes, fsync_dir, make_dirs
from runner.core.money import MONEY_UNITS
from runner.core.redact import redact_value
from runner.state.records import TakeStatus

log = structlog.get_logger()

JOURNAL = "intents.jsonl"
#: What the store's ``statuses()`` says of a failed take whose paid task may still hand over
#: its result (runner.state.decide.collectable): its intent is kept, since no sidecar has its id.
COLLECTABLE_STATUS = "collectable"
_IN_FLIGHT: frozenset[str] = frozenset({
    TakeStatus.SUBMITTING, TakeStatus.AMBIGUOUS, TakeStatus.HELD, TakeStatus.SUBMITTED,
    TakeStatus.COMPLETED, TakeStatus.DOWNLOADING, COLLECTABLE_STATUS})
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_OPEN_APPEND = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def journal_path(output_dir: Path) -> Path:
    """``<output_dir>/.shotrun/intents.jsonl``."""
    return Path(output_dir) / ".shotrun" / JOURNAL


@dataclass(frozen=True, slots=True)
class Intent:
    """One creation that may be in flight (or done, until the journal is compacted)."""

    key: str
    shot_id: str
    take: int
    fingerprint: str
    attempt: int
    estimate: float | None = None
    external_task_id: str | None = None
    salt: str | None = None
    task_id: str | None = None
    credits_reserved: float | None = None
    at: float = 0.0
    unit: str | None = None  # of estimate and credits_reserved (runner.core.money)
    # Its task finished and the result was paid for but not saved (kept by :func:`settle`
    # for a collectable take): gone at the provider, it needs a new creation, not a resend.
    finished: bool = False

    def line(self) -> bytes:
        """The journal line of this intent (a task id too, when it has one)."""
        data: dict[str, Any] = {
            "key": self.key, "shot": self.shot_id, "take": self.take,
            "fingerprint": self.fingerprint, "attempt": self.attempt,
            "estimate": self.estimate, "at": self.at,
        }
        if self.unit is not None:
            data["unit"] = self.unit
        if self.external_task_id is not None:
            data["external_task_id"] = self.external_task_id
            data["salt"] = self.salt
        if self.task_id is not None:
            data["task_id"] = self.task_id
            data["credits_reserved"] = self.credits_reserved
        if self.finished:
            data["finished"] = True
        return _line(data)


def _line(data: Mapping[str, Any]) -> bytes:
    return (_ENCODE(redact_value(dict(data))) + "\n").encode()


def amount(value: Any) -> float | None:
    """A recorded number (credits, an epoch) when it is a sane one; None otherwise: a file
    read back after a crash or an edit may hold anything."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and 0 <= value < 1e12 else None


def _text(value: Any, *, empty: bool = False) -> str | None:
    if isinstance(value, str) and (empty or value) and len(value) <= 500:
        return value
    return None


def recorded_unit(value: Any) -> str | None:
    """A recorded unit of money when it is one shotrun knows (runner.core.money)."""
    return value if value in MONEY_UNITS else None


def _intent(data: Mapping[str, Any]) -> Intent | None:
    key, shot = _text(data.get("key")), _text(data.get("shot"))
    fingerprint = _text(data.get("fingerprint"))
    take, attempt = data.get("take"), data.get("attempt")
    if (key is None or shot is None or fingerprint is None or type(take) is not int
            or type(attempt) is not int or take < 1 or attempt < 1
            or key != f"{shot}/take-{take}"):
        return None
    return Intent(
        key=key, shot_id=shot, take=take, fingerprint=fingerprint, attempt=attempt,
        estimate=amount(data.get("estimate")),
        external_task_id=_text(data.get("external_task_id")),
        salt=_text(data.get("salt"), empty=True),
        task_id=_text(data.get("task_id")),
        credits_reserved=amount(data.get("credits_reserved")),
        at=amount(data.get("at")) or 0.0,
        unit=recorded_unit(data.get("unit")),
        finished=data.get("finished") is True,
    )


def fold(lines: Iterable[bytes]) -> dict[str, Intent]:
    """The journal's lines folded per take key: its last intent, with what later lines say
    of that attempt (its task id; settled: gone). Unreadable lines are skipped."""
    found: dict[str, Intent] = {}
    for raw in lines:
        try:
            data = json.loads(raw)
        except ValueError:
            continue  # a line cut short by a power cut: it was never flushed, never sent
        if not isinstance(data, dict):
            continue
        if "fingerprint" in data:
            intent = _intent(data)
            if intent is not None:
                found[intent.key] = intent
            continue
        key, attempt = data.get("key"), data.get("attempt")
        current = found.get(key) if isinstance(key, str) else None
        if current is None or attempt != current.attempt:
            continue
        if data.get("settled") is True:
            del found[current.key]
        elif (task_id := _text(data.get("task_id"))) is not None:
            found[current.key] = replace(current, task_id=task_id,
                                         credits_reserved=amount(data.get("credits_reserved")))
    return found


def read_intents(output_dir: Path) -> list[Intent]:
    """Every creation the journal under ``output_dir`` says may be in flight."""
    path = journal_path(output_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:  # rebuilt without it, a creation in flight would be paid again
        raise StateError(f"the journal of creations in flight {path} cannot be read "
                         f"({exc.strerror}): make it readable and run again (it collects what is "
                         "paid for without spending); without it, "
                         "creations in flight would be paid again") from exc
    return list(fold(data.splitlines()).values())


class IntentLog:
    """A run's appender to the journal (the writer lock held: one writer at a time)."""

    def __init__(self, output_dir: Path) -> None:
        self.path = journal_path(output_dir)
        self._started = False
        self._attempts: dict[str, int] = {}  # this run's intents: key -> attempt

    def _append(self, line: bytes, *, durable: bool) -> None:
        if not self._started:
            make_dirs(self.path.parent, mode=0o700)
        fd = os.open(self.path, _OPEN_APPEND, 0o600)
        try:
            if not self._started:
                # A line an earlier run left unfinished (a power cut) must not swallow ours.
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        if not self._started:
            if durable:
                fsync_dir(self.path.parent)  # the journal's own entry, once per run
            self._started = True

    def record(self, intent: Intent) -> None:
        """Append the intent and flush it before the creation is sent.

        ``OSError`` when it cannot be written: the caller does not send the creation.
        """
        self._append(intent.line(), durable=True)
        self._attempts[intent.key] = intent.attempt

    def task_arrived(self, key: str, task_id: str, credits_reserved: float | None) -> None:
        """Add the task id to the take's intent (no flush: see the module docstring).

        A failure is logged, not raised: the store has the id, and an intent without it
        only makes a rebuilt store count the take ambiguous.
        """
        attempt = self._attempts.pop(key, None)
        if attempt is None:
            return
        try:
            self._append(_line({"key": key, "attempt": attempt, "task_id": task_id,
                                "credits_reserved": credits_reserved}), durable=False)
        except OSError as exc:
            log.warning("intent_not_updated", take=key, error=str(exc))

    def forget(self, key: str, attempt: int | None = None) -> None:
        """The creation certainly created nothing (not sent, or refused): settled.

        ``attempt``: an earlier run's (found never created); by default this run's own.
        """
        recorded = self._attempts.pop(key, None)
        attempt = recorded if attempt is None else attempt
        if attempt is None:
            return
        try:
            self._append(_line({"key": key, "attempt": attempt, "settled": True}),
                         durable=False)
        except OSError as exc:  # the take is only counted ambiguous if the store is lost
            log.warning("intent_not_settled", take=key, error=str(exc))


def settle(output_dir: Path, statuses: Callable[[], Mapping[str, tuple[str, str]]]) -> int:
    """Compact the journal to the intents the store has not settled; return how many left.

    ``statuses()``: per take key, its (status, fingerprint) in the store (asked only when
    there is a journal). An intent stays while its take is in flight or ambiguous with the
    same fingerprint (a failed take still collectable too: ``collectable``), and when the
    store does not know the take at all; it goes once the take is done, failed for good or
    new, or rendered anew. Called with the writer lock held.
    """
    path = journal_path(output_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    known = statuses()
    kept = []
    for intent in fold(data.splitlines()).values():
        status = known.get(intent.key)
        if status is None or (status[0] in _IN_FLIGHT and status[1] == intent.fingerprint):
            finished = status is not None and status[0] == COLLECTABLE_STATUS
            kept.append(replace(intent, finished=True) if finished else intent)
    if kept:
        atomic_write_bytes(path, b"".join(intent.line() for intent in kept), mode=0o600)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    log.info("intents_settled", kept=len(kept))
    return len(kept)
