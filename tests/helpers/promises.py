"""The money promises, checked the same way by every fault scenario.

Each check reads what the server counted or what is on disk, never what the client says of
itself: a scenario ends with :func:`assert_paid_once`, :func:`assert_lines_bounded` over what
was printed, and :func:`assert_secret_absent` over the output folder.

- Paid once: creations the server accepted equal the takes plus the creations the store
  admits were ambiguous (a creation whose answer was lost or unreadable may have been billed;
  it is counted, never retried blindly).
- Bounded: no line printed, logged or stored is longer than :data:`MAX_LINE` characters
  (a library's message once carried a whole video body into the summary and the store).
- Secret: the API key appears in no file under the output folder, not even inside a URL or
  a body the provider returned.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

#: The longest line a user may be shown or a store may hold.
MAX_LINE = 1000


def ambiguous_creations(store: Path) -> int:
    """Creations the store counts as ambiguous (answer lost or unreadable: maybe billed)."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'ambiguous'").fetchone()
    finally:
        conn.close()
    return int(row[0])


def assert_paid_once(accepted_tasks: int, takes: int, store: Path) -> None:
    """The server created exactly one task per take, plus those counted ambiguous."""
    ambiguous = ambiguous_creations(store)
    assert accepted_tasks == takes + ambiguous, (
        f"the server created {accepted_tasks} tasks for {takes} takes, "
        f"but the store counts only {ambiguous} ambiguous creations")


def long_lines(texts: Iterable[str], limit: int = MAX_LINE) -> list[str]:
    """The lines of ``texts`` longer than ``limit`` (their first 120 characters)."""
    return [line[:120] for text in texts for line in text.splitlines() if len(line) > limit]


def assert_lines_bounded(*texts: str, limit: int = MAX_LINE) -> None:
    """No line of ``texts`` (stdout, stderr, a log) is longer than ``limit`` characters."""
    too_long = long_lines(texts, limit)
    assert not too_long, f"{len(too_long)} lines over {limit} characters: {too_long[:3]}"


def stored_texts(store: Path) -> Iterator[str]:
    """Every text value of every table of the store."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                yield from (value for value in row if isinstance(value, str))
    finally:
        conn.close()


def assert_store_bounded(store: Path, limit: int = MAX_LINE) -> None:
    """No text the store holds has a line longer than ``limit`` characters."""
    assert_lines_bounded(*stored_texts(store), limit=limit)


def assert_secret_absent(root: Path, secret: str) -> None:
    """``secret`` is in no file under ``root`` (store, WAL, sidecars, reports, logs...)."""
    needle = secret.encode()
    leaks = [path for path in root.rglob("*")
             if path.is_file() and needle in path.read_bytes()]
    assert not leaks, f"the key is written in {[str(p.relative_to(root)) for p in leaks]}"
