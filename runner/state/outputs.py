"""Where outputs go on disk, their JSON sidecars, and the history folder.

Layout (issue 4)::

    <output_dir>/<shot-id>/take-<n>.mp4        the verified video
    <output_dir>/<shot-id>/take-<n>.json       its sidecar: the request (no secrets), task id,
                                               fingerprint, credits, timestamps, SHA-256, size
    <output_dir>/<shot-id>/take-<n>.mp4.part   a download in progress
    <output_dir>/<shot-id>/history/<fp12>/     earlier renders of the take, kept by fingerprint

An output is never overwritten or deleted: when a take's new render is verified, the earlier
one's files move to ``history/<first 12 hex of the old fingerprint>/`` (a fresh ``-2``, ``-3``…
folder when that one is taken), where :mod:`runner.state.kept` finds them again by fingerprint.
Every path built from a shot id or a server-given name must stay inside
``output_dir``: ``..``, absolute names and separators are refused with :class:`OutputPathError`,
so a hostile manifest or gateway cannot make shotrun write elsewhere.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Protocol

import structlog

from runner.core.errors import ShotrunError
from runner.core.fsutil import atomic_write_text, fsync_dir, make_dirs
from runner.core.isotime import iso_time
from runner.core.model import Manifest, Take
from runner.core.redact import redact_value
from runner.state.records import TakeRecord

log = structlog.get_logger()

HISTORY_DIR = "history"
SIDECAR_VERSION = 1
_FORBIDDEN = frozenset({"", ".", ".."})


class OutputPathError(ShotrunError, ValueError):
    """A name would put a file outside the output directory (or is not a plain name)."""


class _TakeLike(Protocol):
    @property
    def shot_id(self) -> str: ...

    @property
    def take(self) -> int: ...


def safe_name(name: str, what: str = "name") -> str:
    """``name`` when it is one plain path component; else :class:`OutputPathError`."""
    if (
        name in _FORBIDDEN
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name != name.strip()
        or Path(name).is_absolute()
    ):
        raise OutputPathError(
            f"{what} {name!r} cannot be used as a file name: it must be a plain name without "
            "'/', '\\\\', '..' or surrounding spaces"
        )
    return name


def inside(output_dir: Path, path: Path) -> Path:
    """``path`` when it resolves (following symlinks) inside ``output_dir``.

    Called several times per take, so the common case is cheap: a path lexically under
    the output folder whose components below it are no symlinks (one ``lstat`` each) is
    inside. Only a symlink below the folder, or a path that is not lexically under it,
    pays for resolving both in full (a ``realpath`` walks every component from ``/``).
    """
    root = os.path.abspath(output_dir)
    text = os.fspath(path)
    target = os.path.abspath(text)
    prefix = root if root.endswith(os.sep) else root + os.sep
    # "link/.." is not where it looks: resolve. (The components as ``Path.parts`` has them,
    # without building a Path.)
    lexical = ".." not in (text.replace(os.altsep, os.sep) if os.altsep else text).split(os.sep)
    if lexical and (target == root or target.startswith(prefix)):
        rel = target[len(prefix):] if target != root else ""
        current = root
        for part in rel.split(os.sep) if rel else ():
            current = os.path.join(current, part)
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    break
            except OSError:  # not there yet: nothing below can be a symlink
                return path
        else:
            return path
    real_root = Path(output_dir).resolve()
    resolved = Path(path).resolve()
    if resolved != real_root and not resolved.is_relative_to(real_root):
        raise OutputPathError(f"{path} is outside the output directory {output_dir}")
    return path


def shot_dir(output_dir: Path, shot_id: str) -> Path:
    """``<output_dir>/<shot-id>``, checked."""
    return inside(output_dir, Path(output_dir) / safe_name(shot_id, "shot id"))


def output_path(output_dir: Path, take: _TakeLike) -> Path:
    """``<output_dir>/<shot-id>/take-<n>.mp4`` for a :class:`Take` or a :class:`TakeRecord`."""
    if isinstance(take.take, bool) or not isinstance(take.take, int) or take.take < 1:
        raise OutputPathError(f"take number {take.take!r} of {take.shot_id!r} is not positive")
    # One containment check of the whole path covers its folder too (a shot folder that is a
    # symlink out of the tree takes the file out with it): half the realpath walks of two.
    video = Path(output_dir, safe_name(take.shot_id, "shot id"), f"take-{take.take}.mp4")
    return inside(output_dir, video)


def sidecar_path(video: Path) -> Path:
    """The JSON sidecar beside a video: ``take-<n>.json``."""
    return Path(video).with_suffix(".json")


def part_path(video: Path) -> Path:
    """Where a download of ``video`` is streamed first (``take-<n>.mp4.part``).

    Creates the shot's folder, because the download opens this file next.
    """
    video = Path(video)
    make_dirs(video.parent)
    return _part_of(video)


def _part_of(video: Path) -> Path:
    return video.with_name(video.name + ".part")


@dataclass(frozen=True, slots=True)
class TakeFiles:
    """One take's files, built by :func:`take_files` (so its paths are checked)."""

    video: Path  # <output_dir>/<shot-id>/take-<n>.mp4
    part: Path  # take-<n>.mp4.part: the download in progress
    sidecar: Path  # take-<n>.json

    @property
    def folder(self) -> Path:
        """The shot's folder, where all three live."""
        return self.video.parent


def take_files(output_dir: Path, take: _TakeLike) -> TakeFiles:
    """The video, ``.part`` and sidecar paths of ``take``, checked as :func:`output_path` does.

    Nothing is created on disk (compare :func:`part_path`).
    """
    video = output_path(output_dir, take)
    return TakeFiles(video, _part_of(video), sidecar_path(video))


class RunFiles:
    """A run's output paths: each take's computed and checked once, each folder made once.

    A run asked for a take's paths three or four times (submit, download, archive, sidecar),
    each time building them anew and walking them for symlinks: a tenth of the run's own CPU
    per take. A take's destination cannot change during a run, and the folders below the
    output directory are shotrun's own, so the answer of the first check holds for the run:
    :func:`take_files` still refuses names that escape and symlinks that lead outside, once.
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(output_dir)
        self._takes: dict[tuple[str, int], TakeFiles] = {}
        self._made: set[Path] = set()

    def of(self, take: _TakeLike) -> TakeFiles:
        """``take``'s files (:class:`OutputPathError` for a name that would escape)."""
        key = (take.shot_id, take.take)
        files = self._takes.get(key)
        if files is None:
            files = self._takes[key] = take_files(self.output_dir, take)
        return files

    def make_folder(self, files: TakeFiles) -> None:
        """Create the shot's folder, which a download opens its ``.part`` in next.

        Once per folder and run: takes of one shot share it. ``OSError`` when it cannot be
        made (a file in the way, no rights); it is tried again next time.
        """
        folder = files.folder
        if folder not in self._made:
            make_dirs(folder)  # its entry durable before any take in it is marked done
            self._made.add(folder)


def _free_history_dir(base: Path, fingerprint: str, names: list[str]) -> Path:
    """``history/<fp12>``, or ``<fp12>-2``… when it already holds a file of these names.

    Takes of one shot share a fingerprint, so they share its folder; a take rendered twice
    with one fingerprint (A, B, A again) gets a fresh folder: nothing is ever overwritten.
    """
    stem = safe_name(fingerprint[:12] or "unknown", "fingerprint")
    candidate = base / stem
    number = 1
    while any((candidate / name).exists() for name in names):
        number += 1
        candidate = base / f"{stem}-{number}"
    return candidate


def move_aside(output_dir: Path, video: Path, fingerprint: str, reason: str,
               which: str = "all") -> Path | None:
    """Move ``video``, its sidecar and its ``.part`` to a fresh ``history/<fingerprint[:12]>``
    folder and return it (None: nothing to move). ``which``: ``"part"`` the ``.part`` alone,
    ``"render"`` the video and sidecar (the ``.part`` beside them is the new download being
    filed), ``"video"`` the video alone (a file that is not what its sidecar says)."""
    part = video.with_name(video.name + ".part")
    chosen = {"part": (part,), "render": (video, sidecar_path(video)), "video": (video,)}.get(
        which, (video, sidecar_path(video), part))
    files = [p for p in chosen if p.is_file()]
    if not files:
        return None
    names = [video.name, sidecar_path(video).name, video.name + ".part"]
    target = _free_history_dir(video.parent / HISTORY_DIR, fingerprint, names)
    make_dirs(inside(output_dir, target))
    for file in files:
        os.rename(file, target / file.name)  # same filesystem: atomic, never a copy
    fsync_dir(target)
    fsync_dir(video.parent)
    log.info("output_archived", video=str(video), to=str(target), reason=reason,
             files=[f.name for f in files])
    return target


def archive_previous(output_dir: Path, previous: TakeRecord) -> Path | None:
    """Move an unfinished download (``.part``) of a take's earlier render to its history.

    ``previous`` is :attr:`runner.state.TakePlan.previous`. The earlier render's verified
    video and sidecar stay in place, shown as the previous render, until the new render is
    verified (:func:`archive_stale` moves them then) or a kept render replaces them
    (:mod:`runner.state.kept`): a run that submits nothing (budget used up, stopped) never leaves
    the take without its file. Returns the history folder, or None when nothing moved.
    """
    video = output_path(output_dir, previous)
    return move_aside(output_dir, video, previous.fingerprint, "fingerprint changed",
                       which="part")


def archive_stale(output_dir: Path, take: Take, files: TakeFiles | None = None,
                  task_id: str | None = None) -> Path | None:
    """Before saving ``take``'s output: move aside files at its path left by another fingerprint.

    Covers a run that died between recording a fingerprint change and moving the old files.
    Files of the same fingerprint (an earlier attempt of this very render) stay in place.
    ``files``: the take's paths when the caller has them (:meth:`RunFiles.of`). With no
    sidecar and no video there is nothing to move: two ``stat`` calls answer it, and the
    sidecar is read only when there is one.
    """
    video = (files or take_files(output_dir, take)).video
    saved = None
    if os.path.exists(sidecar_path(video) if files is None else files.sidecar):
        saved = read_sidecar(video)
    found = saved.get("fingerprint") if saved else None
    owner = found if isinstance(found, str) else None
    if owner is None:
        if not os.path.exists(video):
            return None
        owner = "unknown"
    # ``task_id``: the task being filed. A render of the same fingerprint from another task
    # (re-rendered because its source frame changed) is kept too, never overwritten.
    if owner == take.fingerprint and (
            task_id is None or saved is None or saved.get("task_id") in (None, task_id)):
        return None
    return move_aside(output_dir, video, owner, "stale output", which="render")


def read_sidecar(video: Path) -> dict[str, Any] | None:
    """The sidecar of ``video`` as a dict, or None when missing or unreadable."""
    try:
        data = json.loads(sidecar_path(video).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sidecar_fingerprint(video: Path) -> str | None:
    """The fingerprint recorded in ``video``'s sidecar, if any."""
    data = read_sidecar(video)
    value = data.get("fingerprint") if data else None
    return value if isinstance(value, str) else None


def sidecar_data(
    manifest: Manifest | None,
    take: Take,
    record: TakeRecord,
    video: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    verified_duration: float | None = None,
    downloaded_at: float | None = None,
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a sidecar says about one output (secrets redacted, like everything written).

    ``facts``: the file's observed facts (size, rate, codecs, the size expected and any
    warning), :func:`runner.media.observed.video_facts`.
    """
    data: dict[str, Any] = {
        "sidecar_version": SIDECAR_VERSION,
        "manifest": manifest.name if manifest is not None else None,
        "id": take.key,
        "shot": take.shot_id,
        "take": take.take,
        "tags": list(take.tags),
        "fingerprint": take.fingerprint,
        "task_id": record.task_id,
        "request": record.payload,
        "attempts": record.attempts,
        "credits": {
            "estimated": record.credits_estimated,
            "reserved": record.credits_reserved,
            "unit": record.unit,  # a rebuilt store's ledger keeps each unit apart
        },
        "submitted": iso_time(record.submitted_at),
        "completed": iso_time(record.completed_at),
        "downloaded": iso_time(downloaded_at if downloaded_at is not None else time.time()),
        "output": (video if isinstance(video, Path) else Path(video)).name,
        "sha256": sha256 if sha256 is not None else record.sha256,
        "size": size if size is not None else record.size,
        "verified_duration": (
            verified_duration if verified_duration is not None else record.verified_duration
        ),
        "video": dict(facts) if facts is not None else record.video,
    }
    redacted: dict[str, Any] = redact_value(data)
    return redacted


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _json_value(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``, without building an encoder for each value.

    ``json.dumps`` with an option makes a new ``JSONEncoder`` per call; a sidecar has about
    twenty values, most of them strings, whole numbers or null, written here directly.
    """
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and value - value == 0.0:  # finite (NaN and infinities are not)
        return float.__repr__(value)
    if value is None:
        return "null"
    return _ENCODE(value)


def _readable_json(data: Mapping[str, Any]) -> str:
    """One top-level field per line, each value compact.

    As easy to read and diff as ``indent=2`` for a sidecar's flat fields, but written by the
    C encoder: ``json.dumps`` with an indent falls back to pure Python, which cost a third
    of a millisecond per take.
    """
    fields = ",\n".join(f"  {encode_basestring(str(key))}: {_json_value(value)}"
                        for key, value in data.items())
    return "{\n" + fields + "\n}\n" if fields else "{}\n"


def write_sidecar(
    manifest: Manifest | None,
    take: Take,
    record: TakeRecord,
    video: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    verified_duration: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``take-<n>.json`` beside ``video`` atomically (temp file, fsync, rename, dir fsync)."""
    if manifest is not None:
        inside(manifest.output_dir, video)
    data = sidecar_data(manifest, take, record, video, sha256=sha256, size=size,
                        verified_duration=verified_duration)
    if extra:
        data.update(redact_value(dict(extra)))
    path = sidecar_path(video)
    atomic_write_text(path, _readable_json(data))
    return path


def write_take_sidecar(
    files: TakeFiles,
    manifest: Manifest,
    take: Take,
    record: TakeRecord,
    *,
    sha256: str,
    size: int,
    verified_duration: float | None,
    facts: Mapping[str, Any] | None = None,
) -> Path:
    """:func:`write_sidecar` for a run, whose ``files`` are checked already; no folder flush.

    The rename is durable only after the caller's :func:`~runner.core.fsutil.fsync_dir` of
    ``files.folder``, which it does once for the sidecar and the video beside it, before
    the take is marked done.
    """
    data = sidecar_data(manifest, take, record, files.video, sha256=sha256, size=size,
                        verified_duration=verified_duration, facts=facts)
    atomic_write_text(files.sidecar, _readable_json(data), sync_dir=False)
    return files.sidecar
