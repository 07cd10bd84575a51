"""A private cache of big loaded manifests: ``status`` and a resumed ``run`` skip re-expanding.

Loading, checking and expanding 5,000 shots into 20,000 takes (with their fingerprints) costs
about a third of a second on every ``status`` and every ``run``; reading back the frozen result
costs a third of that. The cache holds one entry per manifest path, under
``$XDG_CACHE_HOME/shotrun/manifests/`` (mode 0600 in a 0700 folder: prompts are the user's).

An entry is used only when *everything* the load read is unchanged, compared exactly:

- the manifest's bytes (SHA-256) and its absolute path (relative paths resolve against it),
- every local file it uses: path, size, modification and change times, inode and device
  (their content hashes are in the fingerprints; editing or replacing a file changes these),
- the home folder (``~`` in paths), the Python version, and shotrun's own code that turns a
  file into takes (size and modification time of each source file of that code).

An entry also says whether its load refused local images as for a real fal/Kling URL: the
only check that depends on where a command sends (``--base-url``, ``SHOTRUN_BASE_URL``), and
one that only refuses, so :func:`runner.manifest.load_manifest` serves an entry made without
it only to a load that would not make it either.

Only ``shotrun`` command processes use it (:func:`runner.core.bulk.is_command_process`): tests and
benchmarks that call :func:`runner.manifest.load_manifest` measure and check real loads.
At most :data:`MAX_ENTRIES` entries are kept. Only manifests that loaded without a single
warning or error are stored (a secret found in
the file, an odd image size... are reported afresh by a real load), and only big ones
(:data:`MIN_TAKES`): a small manifest loads in milliseconds anyway. Anything wrong with an
entry (unreadable, damaged, another version) means a normal load, never an error.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import io
import os
import pickle
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import structlog

from runner import __version__
from runner.core.errors import Location
from runner.core.fsutil import atomic_write_bytes, user_cache_dir
from runner.core.model import FrameRef, LocalFile, Manifest, Take, TakeRequest, frozen_mapping

_log = structlog.get_logger()

FORMAT = 2  # 2: an entry says whether its load refused local images for a real URL
MIN_TAKES = 2000
MAX_ENTRIES = 16  # the most recently written are kept; older ones are removed
SETTLE_SECONDS = 2.0  # a file changed this close to a load is not trusted to the cache
# The code a manifest's takes depend on: the whole manifest package and what it calls.
_CODE = ("manifest", "wire", "core", "media/imagetypes.py")


def _cache_dir() -> Path:
    return user_cache_dir() / "manifests"


def _entry(path: Path | str) -> Path:
    where = str(Path(path).absolute())
    return _cache_dir() / f"{hashlib.sha256(where.encode()).hexdigest()[:32]}.pickle"


def _code_stamp() -> list[tuple[str, int, int]]:
    root = Path(__file__).resolve().parent.parent
    stamp = []
    for name in _CODE:
        place = root / name
        files = sorted(place.glob("*.py")) if place.is_dir() else [place]
        for file in files:
            info = file.stat()
            stamp.append((str(file), info.st_size, info.st_mtime_ns))
    return stamp


def _file_stamp(path: Path) -> tuple[int, int, int, int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev


def _local_files(manifest: Manifest) -> list[Path]:
    found: dict[Path, None] = {}
    for take in manifest.takes:
        for media in take.request.media():
            if isinstance(media, LocalFile):
                found[media.path] = None
    return list(found)


def _key(path: Path | str, text: bytes) -> str:
    """What must be equal, besides the local files, for an entry to be used (the path as
    given, too: messages and take locations name the file as the user wrote it)."""
    parts = (FORMAT, __version__, sys.version, str(path), str(Path(path).absolute()),
             os.path.expanduser("~"), hashlib.sha256(text).hexdigest(), _code_stamp())
    return hashlib.sha256(repr(parts).encode()).hexdigest()




def _by_fields(cls: type) -> Any:
    """Store a frozen dataclass as its constructor's arguments: rebuilding it through
    ``__init__`` is twice as fast as the generic per-field ``__setstate__`` of slots classes
    (20,000 takes)."""
    names = tuple(field.name for field in dataclasses.fields(cls))

    def reduce(obj: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, tuple(getattr(obj, name) for name in names)

    return reduce


# Frozen objects hold read-only mapping views, which pickle cannot store by themselves.
_REDUCERS: dict[Any, Any] = {
    **copyreg.dispatch_table,
    MappingProxyType: lambda view: (frozen_mapping, (dict(view),)),
    **{cls: _by_fields(cls) for cls in (Take, TakeRequest, Location, LocalFile, FrameRef)},
}


def read(path: Path | str, text: bytes) -> tuple[Manifest, bool] | None:
    """The cached manifest of ``path`` (whose bytes are ``text``), if still exactly valid, and
    whether its load checked local images for a real provider URL (``remote`` of
    :func:`write`: the caller decides whether that load was strict enough for it)."""
    try:
        data = _entry(path).read_bytes()
    except OSError:
        return None
    try:
        key, files, manifest, remote = pickle.loads(data)
        if key != _key(path, text) or not isinstance(manifest, Manifest) or \
                not isinstance(remote, bool):
            return None
        for file, stamp in files:
            if _file_stamp(Path(file)) != stamp:
                return None
    except Exception:  # a damaged or foreign entry: load normally
        return None
    return manifest, remote


def _prune(folder: Path) -> None:
    """Keep the :data:`MAX_ENTRIES` newest entries (manifests in temporary folders, moved or
    deleted ones would otherwise pile up)."""
    entries = sorted(folder.glob("*.pickle"), key=lambda entry: entry.stat().st_mtime_ns,
                     reverse=True)
    for old in entries[MAX_ENTRIES:]:
        old.unlink(missing_ok=True)


def write(path: Path | str, text: bytes, manifest: Manifest, *, started: float,
          remote: bool = False) -> None:
    """Store ``manifest``, loaded from ``text`` from a load that began at ``started`` (epoch
    seconds), for the next load of ``path`` (big, warning-free ones only). ``remote``: that
    load refused local images as for a real fal/Kling URL (a load for the emulator, or by a
    command that sends nothing, did not, and must not be served to one that would).

    Nothing is stored when the manifest or one of its files changed during or just before
    the load (the entry could pair new stamps with old contents).
    """
    if len(manifest.takes) < MIN_TAKES or manifest.warnings:
        return
    try:
        if Path(path).read_bytes() != text:
            return
        files = [(str(file), _file_stamp(file)) for file in _local_files(manifest)]
        if any(stamp[2] >= (started - SETTLE_SECONDS) * 1e9 for _, stamp in files):
            return  # changed (ctime) around the load: its hash may be of the old content
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _REDUCERS
        pickler.dump((_key(path, text), files, manifest, remote))
        target = _entry(path)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(target, buffer.getvalue(), mode=0o600)
        _prune(target.parent)
    except (OSError, pickle.PicklingError) as exc:
        _log.debug("manifest_cache_not_written", error=str(exc))
