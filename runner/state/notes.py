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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from runner.state.base import StoreBase
from runner.state.records import TakeOutput, TakeRecord
from runner.state.sql import Connection

MAX_NOTE = 4000  # characters: a note is a line or a paragraph, not a document


@dataclass(frozen=True, slots=True)
class Note:
    """What a reviewer wrote about one take, and the output (SHA-256) they wrote it about."""

    key: str
    text: str
    sha256: str | None
    noted_at: float


def read_notes(conn: Connection) -> dict[str, Note]:
    """Every note of the store, by take key."""
    rows = conn.execute("SELECT key, text, sha256, noted_at FROM notes")
    return {row[0]: Note(row[0], row[1], row[2], float(row[3])) for row in rows}


def notes(store: StoreBase) -> dict[str, Note]:
    """Every note, by take key (a reader may call it)."""
    with store._read() as conn:
        return read_notes(conn)


def current_notes(all_notes: Mapping[str, Note],
                  records: Iterable[TakeRecord | TakeOutput]) -> dict[str, str]:
    """Take key -> note text, for the notes that still hold (same output as when written)."""
    if not all_notes:
        return {}
    found: dict[str, str] = {}
    for record in records:
        text = held_note(all_notes, record.key, record.sha256)
        if text is not None:
            found[record.key] = text
    return found


def held_note(all_notes: Mapping[str, Note], key: str, sha256: str | None) -> str | None:
    """The note of take ``key`` when it was written about output ``sha256``, else None."""
    note = all_notes.get(key)
    return note.text if note is not None and note.sha256 == sha256 else None


def set_note(store: StoreBase, key: str, text: str, sha256: str | None) -> None:
    """Record ``text`` as the note of take ``key`` about output ``sha256`` (empty: remove it)."""
    with store._write() as conn:
        if text:
            conn.execute("INSERT INTO notes (key, text, sha256, noted_at) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT (key) DO UPDATE SET text = excluded.text,"
                         " sha256 = excluded.sha256, noted_at = excluded.noted_at",
                         (key, text, sha256, store._clock()))
        else:
            conn.execute("DELETE FROM notes WHERE key = ?", (key,))
        store._event(conn, key, "take_noted" if text else "take_note_removed", sha256=sha256,
                     length=len(text))
