"""A reviewer's note per take (``shotrun review``), kept with the output it was written about.

One row per take key in the ``notes`` table (schema version 3): the text, the SHA-256 of the
take's output when the note was written (``None`` for a take with no output yet: a failed
take's "prompt too vague") and when. A note *holds* while the take's output is still the one
it was written about, as a pick does: once the take is rendered again, the note about the old
video no longer shows (it stays in the table, and in the events). ``status --json`` (the
``note`` field), the report and the review page show the notes that hold.

Writing goes through the store's writer, like every other change: :func:`set_note` on a store
opened with :meth:`runner.state.StateStore.open` (``runner.state.choices.note_take`` does that).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from runner.state.base import StoreBase

MAX_NOTE = 4000  # characters: a note is a line or a paragraph, not a document


@dataclass(frozen=True, slots=True)
class Note:
    """What a reviewer wrote about one take, and the output (SHA-256) they wrote it about."""

    key: str
    text: str
    sha256: str | None
    noted_at: float


class HasOutput(Protocol):
    """What deciding whether a note holds reads of a take (a record or a trace's Finished)."""

    @property
    def key(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...


def read_notes(conn: sqlite3.Connection) -> dict[str, Note]:
    """Every note of the store, by take key."""
    rows = conn.execute("SELECT key, text, sha256, noted_at FROM notes")
    return {row[0]: Note(row[0], row[1], row[2], float(row[3])) for row in rows}


def notes(store: StoreBase) -> dict[str, Note]:
    """Every note, by take key (a reader may call it)."""
    with store._read() as conn:
        return read_notes(conn)


def current_notes(all_notes: Mapping[str, Note], records: Iterable[HasOutput]) -> dict[str, str]:
    """Take key -> note text, for the notes that still hold (same output as when written)."""
    if not all_notes:
        return {}
    found: dict[str, str] = {}
    for record in records:
        note = all_notes.get(record.key)
        if note is not None and note.sha256 == record.sha256:
            found[record.key] = note.text
    return found


def set_note(store: StoreBase, key: str, text: str, sha256: str | None) -> None:
    """Record ``text`` as the note of take ``key`` about output ``sha256`` (empty: remove it)."""
    with store._write() as conn:
        if text:
            conn.execute("INSERT OR REPLACE INTO notes (key, text, sha256, noted_at)"
                         " VALUES (?, ?, ?, ?)", (key, text, sha256, store._clock()))
        else:
            conn.execute("DELETE FROM notes WHERE key = ?", (key,))
        store._event(conn, key, "take_noted" if text else "take_note_removed", sha256=sha256,
                     length=len(text))
