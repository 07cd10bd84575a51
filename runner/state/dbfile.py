"""The store's file: creation (mode 0600), pragmas, schema migrations and the writer lock.

Why each setting:
- WAL journal: a reader (``shotrun status``) never blocks the run and the run never blocks it.
- ``synchronous=FULL``: a commit is on disk when ``COMMIT`` returns, so "the task id is
  committed the moment it arrives" survives a power cut, not only a crash of the process.
- mode 0600 (and 0700 for ``.shotrun/``): the store names the user's files and prompts; the
  file is created with that mode *before* SQLite opens it, so no byte is ever world-readable.
- ``state.lock`` held with ``flock`` for the writer's whole life: two runs of one manifest
  would both submit the same takes and pay twice. flock dies with the process, so a
  ``kill -9`` never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from runner.core.errors import StateError, StoreLocked

SCHEMA_VERSION = 5

_TAKE_COLUMNS = """
    key TEXT NOT NULL,
    shot_id TEXT NOT NULL,
    take INTEGER NOT NULL,
    status TEXT NOT NULL,
    failure_kind TEXT,
    fingerprint TEXT NOT NULL,
    fingerprint_payload TEXT,
    reason TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    task_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    ambiguous_attempts INTEGER NOT NULL DEFAULT 0,
    payload TEXT,
    credits_estimated REAL,
    credits_reserved REAL,
    estimated_time REAL,
    result_url TEXT,
    link_expires_at REAL,
    gateway_status TEXT,
    progress INTEGER,
    output_path TEXT,
    size INTEGER,
    sha256 TEXT,
    verified_duration REAL,
    last_error_code TEXT,
    last_error TEXT,
    polls INTEGER NOT NULL DEFAULT 0,
    created_at REAL,
    submitting_at REAL,
    submitted_at REAL,
    completed_at REAL,
    downloaded_at REAL,
    updated_at REAL NOT NULL
"""

_V1 = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"CREATE TABLE takes ({_TAKE_COLUMNS}, PRIMARY KEY (key)) WITHOUT ROWID",
    f"""CREATE TABLE take_history (
        history_id INTEGER PRIMARY KEY AUTOINCREMENT,
        {_TAKE_COLUMNS},
        archived_at REAL NOT NULL,
        archive_reason TEXT NOT NULL)""",
    "CREATE INDEX take_history_key ON take_history (key)",
    # One row per creation request that may have reached the gateway: the budget's ledger.
    """CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        outcome TEXT NOT NULL,
        task_id TEXT,
        credits_estimated REAL,
        credits_reserved REAL,
        error_code TEXT,
        error TEXT,
        started_at REAL NOT NULL,
        ended_at REAL)""",
    "CREATE INDEX attempts_key ON attempts (key)",
    """CREATE TABLE uploads (
        sha256 TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        expires_at REAL,
        size INTEGER,
        mime TEXT,
        uploaded_at REAL NOT NULL)""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        key TEXT,
        event TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}')""",
    "CREATE INDEX events_key ON events (key)",
    # Append-only, enforced by the database rather than by good intentions.
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
)

# Continuity and takes (issue 8): which source output a dependent take was cut from
# (``{shot_id: sha256}``, set when it is submitted), and the take the user picked per shot
# (with the picked output's hash: a pick of a take rendered again no longer holds).
_V2 = (
    "ALTER TABLE takes ADD COLUMN frame_hashes TEXT",
    "ALTER TABLE take_history ADD COLUMN frame_hashes TEXT",
    """CREATE TABLE picks (
        shot_id TEXT PRIMARY KEY,
        take INTEGER NOT NULL,
        sha256 TEXT,
        picked_at REAL NOT NULL)""",
)

# What the output really is (issue 14): the decoded size, frame rate and codecs of a done
# take's video, as JSON, so that a gateway rendering other sizes than shotrun's nominal ones is
# recorded and reported, not refused; and a reviewer's note per take (issue 16), kept with the
# hash of the output it was written about.
_V3 = (
    "ALTER TABLE takes ADD COLUMN video TEXT",
    "ALTER TABLE take_history ADD COLUMN video TEXT",
    """CREATE TABLE notes (
        key TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        sha256 TEXT,
        noted_at REAL NOT NULL)""",
)

Migration = tuple[str, ...] | Callable[[sqlite3.Connection], None]

# The unit of money of each figure (issue 21, runner.core.money): ``credits`` (the gateway's),
# ``units`` (Kling's) or ``usd`` (fal's). A store written before knew the provider only from
# the fingerprint payload (which names any provider but the gateway), so that is where an
# older row's unit is read from; an attempt takes its take's. NULL never stays: it would
# read as credits, which a Kling or fal figure is not.
_UNIT_OF_PAYLOAD = (
    "CASE COALESCE(json_extract(fingerprint_payload, '$.provider'), 'gateway')"
    " WHEN 'kling' THEN 'units' WHEN 'fal' THEN 'usd' ELSE 'credits' END"
)


def _v4(conn: sqlite3.Connection) -> None:
    for table in ("takes", "take_history"):
        conn.execute(f"ALTER TABLE {table} ADD COLUMN unit TEXT")
        conn.execute(f"UPDATE {table} SET unit = {_UNIT_OF_PAYLOAD}"
                     " WHERE json_valid(COALESCE(fingerprint_payload, '{}'))")
        conn.execute(f"UPDATE {table} SET unit = 'credits' WHERE unit IS NULL")
    conn.execute("ALTER TABLE attempts ADD COLUMN unit TEXT")
    conn.execute(
        "UPDATE attempts SET unit = COALESCE("
        "(SELECT t.unit FROM takes t WHERE t.key = attempts.key"
        "  AND t.fingerprint = attempts.fingerprint),"
        "(SELECT h.unit FROM take_history h WHERE h.key = attempts.key"
        "  AND h.fingerprint = attempts.fingerprint ORDER BY h.history_id DESC LIMIT 1),"
        " 'credits')")


# A team on one shot list (issue 24): the account whose key created a take's task (its task
# is polled and downloaded with that key only), the runners sharing the store (one lease
# each, renewed by a heartbeat: claims and seats live as long as their runner's lease), the
# take each runner claimed, and the seats of each provider account (one row per unit of the
# account's concurrency). The embedded store has them too: one schema, and `store copy`
# moves a store between the engines whole. See runner.state.team.
TEAM_TABLES = (
    """CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        lease_until REAL NOT NULL,
        ended_at REAL)""",
    """CREATE TABLE claims (
        key TEXT PRIMARY KEY,
        runner TEXT NOT NULL,
        claimed_at REAL NOT NULL)""",
    """CREATE TABLE seats (
        account TEXT NOT NULL,
        seat INTEGER NOT NULL,
        runner TEXT,
        take_key TEXT,
        taken_at REAL,
        PRIMARY KEY (account, seat))""",
)
_V5 = (
    "ALTER TABLE takes ADD COLUMN account TEXT",
    "ALTER TABLE take_history ADD COLUMN account TEXT",
    *TEAM_TABLES,
)

# version -> what brings a store at version-1 to it. Never edit a released entry: add one.
MIGRATIONS: dict[int, Migration] = {1: _V1, 2: _V2, 3: _V3, 4: _v4, 5: _V5}




def create_private_file(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600, whatever the umask or an older mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps no looser mode than ours
    finally:
        os.close(fd)


DISK_TROUBLE = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN")


def sqlite_problem(exc: sqlite3.Error) -> str:
    """The sqlite error, plus what to do when the disk is at fault (full, read-only, gone).

    sqlite reports a full disk (or a file-size limit) as a bare "disk I/O error"; without
    the hint the user cannot tell it from a damaged store.
    """
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name.startswith(DISK_TROUBLE):
        return (f"{exc} (is the disk full or read-only? free some space and run again: it "
                "collects what is paid for without spending)")
    return str(exc)


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit) with rows by column name."""
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                check_same_thread=False, timeout=5.0,
            )
        else:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
        conn.row_factory = sqlite3.Row
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(f"state store {path}: cannot use WAL journal mode ({mode})")
            conn.execute("PRAGMA synchronous=FULL")
        return conn
    except sqlite3.Error as exc:
        raise StateError(f"state store {path} cannot be opened: {sqlite_problem(exc)}") from exc


def stored_version(conn: sqlite3.Connection) -> int:
    """The schema version written in the store; 0 for an empty file."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not has_table:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def check_version(path: Path, version: int) -> None:
    """Refuse a store written by a newer shotrun: its meaning may have changed."""
    check_version_of(str(path), version)


def check_version_of(where: str, version: int) -> None:
    """:func:`check_version` of the store at ``where`` (a path or a database's URL)."""
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state store {where} has schema version {version}, newer than this shotrun "
            f"understands ({SCHEMA_VERSION}): upgrade shotrun (nothing was sent)"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the store to :data:`SCHEMA_VERSION`, one transaction per step; return it."""
    version = stored_version(conn)
    check_version(path, version)
    while version < SCHEMA_VERSION:
        target = version + 1
        step = MIGRATIONS[target]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            if callable(step):
                step(conn)
            else:
                for statement in step:
                    conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # sqlite may have rolled back itself (a full disk)
                conn.execute("ROLLBACK")
            raise
        version = target
    return version


class WriterLock:
    """An exclusive ``flock`` on ``state.lock`` beside the store, holding the owner's pid."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.path = store_path.with_name("state.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLocked` naming the pid that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"another shotrun run is using {self.store_path} (pid {holder})",
                int(holder) if holder.isdigit() else None,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the next run in (closing the descriptor drops the lock); forget our pid."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def writer_pid(store_path: Path) -> int | None:
    """The pid of the run holding ``store_path`` as far as can be told without locking.

    A reader must never touch the lock (even a shared lock taken for an instant would make a
    run starting at that instant refuse to start), so this reads the pid the writer wrote and
    checks that such a process exists. A run killed with ``kill -9`` leaves its pid behind;
    the process check catches that, short of pid reuse: treat the answer as a hint.
    """
    try:
        text = store_path.with_name("state.lock").read_text(encoding="ascii").strip()
        pid = int(text)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # exists, owned by someone else
    return pid
