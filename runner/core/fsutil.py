"""Crash-safe file writes: a file is either its old content or its new content, never half.

The recipe everywhere (sidecars, reports, finished downloads): write a temporary file in the
*same directory* (so the rename cannot cross filesystems), fsync it, ``os.replace`` it over the
target, then fsync the directory so the rename itself survives a power cut. A crash at any
point leaves at worst a stray ``.*.tmp`` file, which :func:`atomic_write_bytes` never reuses.

Several renames into one folder may share that last flush (``sync_dir=False`` on each, then
one :func:`fsync_dir`): a directory fsync costs a take more CPU than the write itself, and a
run saves a video and its sidecar side by side. The caller then owes the flush before it
relies on the files (before a take is marked done).

Paths are handled as strings inside: a pathlib object per step (parent, temp name) was a
tenth of the cost of saving a small file.

Temporary files are created with mode ``0o666`` filtered by the user's umask (what a plain
``open`` would give), unless ``mode`` asks for something stricter such as ``0o600``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

#: The folder of shotrun's own files inside an output folder: the store, profiles, probes.
STATE_DIR = ".shotrun"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/shotrun`` (else ``~/.cache/shotrun``): shotrun's files per user, not
    per output folder (the manifest cache, crash logs, warnings already shown)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shotrun"


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry (a rename or a creation in it) to disk.

    Platforms that cannot open a directory (Windows) skip this silently: there the rename is
    as durable as the OS makes it.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: str | os.PathLike[str], mode: int = 0o777) -> bool:
    """``mkdir -p`` whose new folders survive a power cut; True when it created one.

    A file renamed into a folder and flushed there is still lost with the folder if the
    folder's own entry in *its* parent never reached the disk: a take marked done whose shot
    folder vanished. So each folder created here (the missing ancestors too) is flushed into
    its parent before this returns. Folders that exist cost one ``stat``. A file in the way
    raises ``FileExistsError``, as ``Path.mkdir(parents=True, exist_ok=True)`` does; ``mode``
    applies to the folders created (filtered by the umask).
    """
    path = os.fspath(directory)
    missing: list[str] = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if not parent or parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            continue  # made by someone else meanwhile: theirs to flush
        fsync_dir(os.path.dirname(folder) or os.curdir)
    return bool(missing)


def blocking_file(folder: Path) -> Path | None:
    """The existing non-folder at ``folder`` or above it (the first that exists), if any:
    what stops ``folder`` from being made. None when the nearest existing one is a folder
    (or cannot be examined: the command's own open then says what is wrong)."""
    current = folder
    while True:
        try:
            if os.path.isdir(current):
                return None
            if os.path.lexists(current):
                return current
        except OSError:
            return None
        if current.parent == current:
            return None
        current = current.parent


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None,
    sync_dir: bool = True,
) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    ``mode`` (e.g. ``0o600``) is applied exactly; by default the umask decides. The parent
    directory must exist. ``sync_dir=False`` leaves the directory's flush to the caller (see
    the module's docstring): the content is durable, the rename not yet.
    """
    path = os.fspath(path)
    temp = _temp_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if sync_dir:
        fsync_dir(os.path.dirname(path) or ".")


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, mode: int | None = None,
    encoding: str = "utf-8", sync_dir: bool = True,
) -> None:
    """Replace ``path`` with ``text`` atomically and durably (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode, sync_dir=sync_dir)


def replace_durably(
    source: str | os.PathLike[str], dest: str | os.PathLike[str], *,
    source_synced: bool = False, sync_dir: bool = True,
) -> None:
    """fsync ``source``, ``os.replace`` it onto ``dest``, fsync ``dest``'s directory.

    ``source_synced``: the caller already flushed ``source`` (a finished download is
    fsynced by its writer), so its content needs no second flush. ``sync_dir=False``: the
    caller flushes the directory itself, after this and other renames into it.
    """
    if not source_synced:
        fsync_file(source)
    os.replace(source, dest)
    if sync_dir:
        fsync_dir(os.path.dirname(os.fspath(dest)) or ".")


def hash_file(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents); the last level, when created here, gets mode 0700."""
    if not directory.exists():
        # Each new folder is flushed into its parent: the store's files are fsynced by
        # sqlite, which is of no use if the folder holding them is lost in a power cut.
        make_dirs(directory.parent)
        make_dirs(directory, mode=0o700)
