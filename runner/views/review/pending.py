"""Picks and notes made while a run holds the store: kept by ``review``, saved when it ends.

The store has one writer. A live ``shotrun run`` is that writer for its whole life, so a pick
clicked during it cannot be written then. Rather than refuse it (the director is watching the
run to pick as takes arrive), review keeps it here, says so on the page ("a run is in
progress (pid N): picks and notes are saved when it ends") and writes it, through the same
code as ``shotrun pick`` (:mod:`runner.state.choices`), the moment the run has let the store go.
Never two writers: a write is only ever tried by taking the store's lock, and a lock still
held leaves the write here. Never a silent loss: what is waiting is listed on the page, what
fails when its turn comes is listed with why, and what is still waiting when review stops is
printed by the command with the way to redo it.

Only the latest wish counts: a second pick of the same shot replaces the first, a second
note of the same take replaces the first (as the store itself would).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import structlog

from runner.core.errors import ShotrunError, StoreLocked
from runner.core.model import Manifest
from runner.state.choices import note_take, pick_take

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Wish:
    """A pick (``kind`` "pick": ``target`` is the shot id, ``take`` its number) or a note
    (``kind`` "note": ``target`` is the take key, ``text`` the note)."""

    kind: str
    target: str
    take: int = 0
    text: str = ""

    def describe(self) -> str:
        if self.kind == "pick":
            return f"pick {self.target} take {self.take}"
        return f"note on {self.target}" if self.text else f"removing the note on {self.target}"


@dataclass(frozen=True, slots=True)
class Failed:
    """A kept wish that could not be saved when its turn came, and why."""

    wish: Wish
    reason: str


def save(manifest: Manifest, wish: Wish) -> None:
    """Write one wish now (as the store's writer for a moment): ``StoreLocked`` if a run
    holds the store, a :class:`ShotrunError` when it cannot be done at all."""
    if wish.kind == "pick":
        pick_take(manifest, wish.target, wish.take)
    else:
        note_take(manifest, wish.target, wish.text)


class Pending:
    """The wishes waiting for the store, in the order they were made (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wishes: dict[tuple[str, str], Wish] = {}
        self.failed: list[Failed] = []
        self.version = 0  # changes with every change here: the page shows the list

    def keep(self, wish: Wish) -> None:
        with self._lock:
            self._wishes.pop((wish.kind, wish.target), None)  # the latest wish goes last
            self._wishes[(wish.kind, wish.target)] = wish
            self.version += 1

    def wishes(self) -> list[Wish]:
        with self._lock:
            return list(self._wishes.values())

    def drop(self, wish: Wish) -> None:
        """Forget ``wish`` (saved directly since, say) if it is still the one kept."""
        with self._lock:
            if self._wishes.get((wish.kind, wish.target)) == wish:
                del self._wishes[(wish.kind, wish.target)]
                self.version += 1

    def flush(self, manifest: Manifest) -> int:
        """Save every wish, in order, while the store is free; returns how many were saved.

        Stops at the first :class:`StoreLocked` (a run took the store again): the rest stay.
        A wish that cannot be done any more (its take was rendered again, say) is moved to
        :attr:`failed` with the reason.
        """
        saved = 0
        for wish in self.wishes():
            try:
                save(manifest, wish)
            except StoreLocked:
                break
            except ShotrunError as exc:
                log.warning("review_wish_failed", wish=wish.describe(), error=str(exc))
                with self._lock:
                    self.failed.append(Failed(wish, str(exc)))
                    del self.failed[:-20]  # the page lists the latest few
            else:
                saved += 1
                log.info("review_wish_saved", wish=wish.describe())
            self.drop(wish)
            with self._lock:
                self.version += 1
        return saved
