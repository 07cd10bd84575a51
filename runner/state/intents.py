"""Creations in flight, recorded beside the store so that losing the store loses no money.

The store commits the intent to create (``submitting``) before the request is sent, and a
run that dies then finds the take ambiguous (maybe billed). A store that is deleted or
emptied takes that knowledge with it: the next run would see a new take and pay again. So
the intent is also written to a small file of its own, ``<output_dir>/.shotrun/intents/
<shot-id>.take-<n>.json``, fsynced and atomically renamed into place before the creation
is sent. It carries the take's key, fingerprint and attempt, the request (secrets
redacted) and, where the provider lets the client name its tasks (Kling), the
``external_task_id`` the creation carries and the store's salt that made it, so that a
rebuilt store looks the task up by the same id. When the task id arrives it is added.

Settled intents go: the file of a take that is done, failed or back to new is removed at the
end of a run (:func:`settle`); a done take's sidecar also supersedes its intent when the store
is rebuilt (:mod:`runner.state.rebuild`), so a run killed before the clean-up leaves nothing
wrong behind, only a file to remove.

Durability, and its price per take: the intent is two fsyncs (file and folder) before the
creation; the task id is written without fsync (a killed process leaves the page cache
intact; a power cut that loses it leaves the take ambiguous, never new); the removal is an
``unlink`` without fsync (undone by a power cut, the take is found done by its sidecar).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from runner.fsutil import atomic_write_bytes, make_dirs
from runner.redact import redact_value

log = structlog.get_logger()

INTENTS_DIR = "intents"
INTENT_VERSION = 1
_SUFFIX = ".json"
_IN_FLIGHT = frozenset({"submitting", "ambiguous", "held", "submitted", "completed",
                        "downloading"})
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def intents_dir(output_dir: Path) -> Path:
    """``<output_dir>/.shotrun/intents``."""
    return Path(output_dir) / ".shotrun" / INTENTS_DIR


def intent_name(key: str) -> str:
    """The file name of a take's intent: ``<shot-id>.take-<n>.json`` (a digest when long).

    A take key is ``<shot-id>/take-<n>`` and a shot id is one plain path component, so the
    name is unique; the file's content names the key, so the name is only for people.
    """
    name = key.replace("/", ".") + _SUFFIX
    if len(name.encode()) > 200:
        name = hashlib.sha256(key.encode()).hexdigest()[:40] + _SUFFIX
    return name


@dataclass(frozen=True, slots=True)
class Intent:
    """One creation that may be in flight (or done, until its file is removed)."""

    key: str
    shot_id: str
    take: int
    fingerprint: str
    attempt: int
    request: Mapping[str, Any] | None = None
    estimate: float | None = None
    external_task_id: str | None = None
    salt: str | None = None
    task_id: str | None = None
    credits_reserved: float | None = None
    at: float = 0.0

    def to_json(self) -> bytes:
        data = {
            "intent_version": INTENT_VERSION, "key": self.key, "shot": self.shot_id,
            "take": self.take, "fingerprint": self.fingerprint, "attempt": self.attempt,
            "request": self.request, "estimate": self.estimate,
            "external_task_id": self.external_task_id, "salt": self.salt,
            "task_id": self.task_id, "credits_reserved": self.credits_reserved, "at": self.at,
        }
        # One field per line, as sidecars are: no line grows with the request's size alone.
        fields = ",\n".join(f"  {_ENCODE(name)}: {_ENCODE(value)}"
                             for name, value in redact_value(data).items())
        return ("{\n" + fields + "\n}\n").encode()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) < 1e12 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 500 else None


def parse_intent(data: Any) -> Intent | None:
    """An :class:`Intent` from a file's JSON, None when it is not one (never raises)."""
    if not isinstance(data, dict):
        return None
    key, shot, fingerprint = _text(data.get("key")), _text(data.get("shot")), \
        _text(data.get("fingerprint"))
    take, attempt = data.get("take"), data.get("attempt")
    if (key is None or shot is None or fingerprint is None or type(take) is not int
            or type(attempt) is not int or take < 1 or attempt < 1):
        return None
    request = data.get("request")
    return Intent(
        key=key, shot_id=shot, take=take, fingerprint=fingerprint, attempt=attempt,
        request=request if isinstance(request, dict) else None,
        estimate=_number(data.get("estimate")),
        external_task_id=_text(data.get("external_task_id")), salt=_text(data.get("salt")),
        task_id=_text(data.get("task_id")),
        credits_reserved=_number(data.get("credits_reserved")),
        at=_number(data.get("at")) or 0.0,
    )


class IntentLog:
    """A run's writer of intent files (the folder made once)."""

    def __init__(self, output_dir: Path) -> None:
        self.folder = intents_dir(output_dir)
        self._folder_made = False
        self._written: dict[str, Intent] = {}

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, intent_name(key))

    def record(self, intent: Intent) -> None:
        """Write the intent durably (file and folder fsynced) before the creation is sent.

        ``OSError`` when it cannot be written: the caller does not send the creation.
        """
        if not self._folder_made:
            make_dirs(self.folder, mode=0o700)
            self._folder_made = True
        atomic_write_bytes(self._path(intent.key), intent.to_json(), mode=0o600)
        self._written[intent.key] = intent

    def task_arrived(self, key: str, task_id: str, credits_reserved: float | None) -> None:
        """Add the task id to the take's intent (no fsync: see the module docstring).

        A failure is logged, not raised: the store has the id, and an intent without it
        only makes a rebuilt store count the take ambiguous.
        """
        intent = self._written.pop(key, None)
        if intent is None:
            return
        updated = Intent(**{**_fields(intent), "task_id": task_id,
                            "credits_reserved": credits_reserved})
        path = self._path(key)
        temp = os.path.join(self.folder, f".{intent_name(key)}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, updated.to_json())
            finally:
                os.close(fd)
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            log.warning("intent_not_updated", take=key, error=str(exc))

    def forget(self, key: str) -> None:
        """The creation certainly created nothing (not sent, or refused): remove its intent."""
        self._written.pop(key, None)
        remove(self.folder, key)


def _fields(intent: Intent) -> dict[str, Any]:
    return {name: getattr(intent, name) for name in Intent.__slots__}


def remove(folder: Path, key: str) -> None:
    """Remove a take's intent file if there is one (no fsync: see the module docstring)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, intent_name(key)))


def read_intents(output_dir: Path) -> list[Intent]:
    """Every readable intent under ``output_dir`` (unreadable files are logged and left)."""
    folder = intents_dir(output_dir)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    found: list[Intent] = []
    for name in names:
        if not name.endswith(_SUFFIX) or name.startswith("."):
            continue
        try:
            intent = parse_intent(json.loads((folder / name).read_bytes()))
        except (OSError, ValueError):
            intent = None
        if intent is None:
            log.warning("intent_unreadable", file=str(folder / name))
            continue
        found.append(intent)
    return found


def settle(output_dir: Path, statuses: Callable[[], Mapping[str, tuple[str, str]]]) -> int:
    """Remove the intents the store has settled; return how many.

    ``statuses()``: per take key, its (status, fingerprint) in the store (asked only when
    there are intents). An intent stays while
    its take is in flight or ambiguous with the same fingerprint, and when the store does not
    know the take at all; it goes once the take is done, failed or new, or rendered anew.
    Only the intents of takes still in flight are read: the others go by their name.
    """
    folder = intents_dir(output_dir)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    if not names:
        return 0
    by_name = {intent_name(key): value for key, value in statuses().items()}
    removed = 0
    for name in names:
        if name.startswith(".") and name.endswith(".tmp"):
            with contextlib.suppress(OSError):  # a write cut short by a crash
                os.unlink(folder / name)
            continue
        known = by_name.get(name)
        if known is None:
            continue
        status, fingerprint = known
        if status in _IN_FLIGHT:
            try:
                intent = parse_intent(json.loads((folder / name).read_bytes()))
            except (OSError, ValueError):
                continue
            if intent is None or intent.fingerprint == fingerprint:
                continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
            removed += 1
    if removed:
        log.info("intents_settled", removed=removed)
    return removed
