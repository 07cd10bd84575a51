"""Choosing and annotating takes: the one code path of ``shotrun pick`` and ``shotrun review``.

Both write through the store's writer (:meth:`runner.state.location.StoreAt.open_writer`). On
the embedded file it takes the store's lock for the moment of the write and releases it: while
a run holds the lock, the write raises :class:`runner.core.errors.StoreLocked` (naming the run's
pid) and nothing is written. ``pick`` reports that and exits 2; ``review`` keeps the write and
applies it when the run ends (:mod:`runner.views.review.pending`). A team's database has no
writer lock: the pick or note is one transaction of its own (``set_pick``, ``set_note``),
written at once beside the runners and beside other review pages. :func:`check_pick` and
:func:`check_note` make the same checks on a store opened read-only, so a write kept for later
is refused at once when it could never succeed.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.core import advice
from runner.core.errors import UsageError
from runner.core.model import Manifest, Take
from runner.core.words import count
from runner.state import StateStore, TakeRecord, TakeStatus
from runner.state.continuity import frame_sources
from runner.state.location import store_at
from runner.state.notes import MAX_NOTE


@dataclass(frozen=True, slots=True)
class Picked:
    """A pick recorded: the shot, its take, and the shots that start from its frames."""

    shot_id: str
    take: int
    dependents: tuple[str, ...]


def manifest_take(manifest: Manifest, shot_id: str, take: int) -> Take:
    """The take ``take`` of shot ``shot_id``, or a :class:`UsageError` saying what exists."""
    takes = [t for t in manifest.takes if t.shot_id == shot_id]
    if not takes:
        shots = sorted({t.shot_id for t in manifest.takes})
        listed = ", ".join(shots[:10]) + (" ..." if len(shots) > 10 else "")
        raise UsageError(f"{manifest.path}: no shot {shot_id!r} (shots: {listed})")
    for found in takes:
        if found.take == take:
            return found
    has = "only take 1" if len(takes) == 1 else f"takes 1 to {len(takes)}"
    raise UsageError(f"{manifest.path}: shot {shot_id} has {has}, not {take}")


def require_rendered(manifest: Manifest) -> None:
    """A :class:`UsageError` unless a run has made the store (nothing to choose before)."""
    if not store_at(manifest).exists():
        raise UsageError(f"nothing is rendered yet for {manifest.path}: run it first "
                         f"(`shotrun run MANIFEST`, {advice.FIRST_RUN})")


def check_pick(manifest: Manifest, store: StateStore, shot_id: str, take: int) -> TakeRecord:
    """The record of the take to pick, when it is a finished take of the manifest's version
    of the shot; else a :class:`UsageError` naming the finished takes (any store mode)."""
    wanted = manifest_take(manifest, shot_id, take)
    fingerprints = {t.key: t.fingerprint for t in manifest.takes if t.shot_id == shot_id}
    records = {r.key: r for r in store.shot_records(shot_id)}
    record = records.get(wanted.key)
    if (record is None or record.status is not TakeStatus.DONE
            or record.fingerprint != wanted.fingerprint):
        state = "not recorded" if record is None else (
            "changed in the manifest since" if record.fingerprint != wanted.fingerprint
            else record.status.value)
        finished = sorted(r.take for r in records.values()
                          if r.status is TakeStatus.DONE
                          and r.fingerprint == fingerprints.get(r.key))
        hint = (f"finished takes: {', '.join(map(str, finished))}" if finished
                else "no take of it is finished yet")
        raise UsageError(f"{wanted.key} is not a finished take ({state}); {hint}")
    return record


def dependents_of(manifest: Manifest, shot_id: str) -> tuple[str, ...]:
    """The shots that start from a frame of ``shot_id`` (continuity), sorted."""
    return tuple(sorted({t.shot_id for t in manifest.takes if shot_id in frame_sources(t)}))


def pick_take(manifest: Manifest, shot_id: str, take: int) -> Picked:
    """Record ``take`` as the chosen take of ``shot_id``, as the store's writer for a moment.

    :class:`UsageError` for an unknown shot or take, one that is not finished, or no run yet;
    :class:`runner.core.errors.StoreLocked` while a run holds the store file (nothing
    written; a database has no such lock).
    """
    manifest_take(manifest, shot_id, take)
    require_rendered(manifest)
    with store_at(manifest).open_writer() as store:
        record = check_pick(manifest, store, shot_id, take)
        store.set_pick(shot_id, take, record.sha256)
    return Picked(shot_id, take, dependents_of(manifest, shot_id))


def check_note(manifest: Manifest, key: str, text: str) -> Take:
    """The take a note is for (``<shot>/take-<n>`` of the manifest), once the key and the
    note are checked (as :func:`check_pick` checks a pick)."""
    shot_id, _, number = key.rpartition("/take-")
    if not shot_id or not number.isdigit():
        raise UsageError(f"{key!r} is not a take (expected SHOT/take-N)")
    if len(text) > MAX_NOTE:
        raise UsageError(f"a note is at most {count(MAX_NOTE, 'character')}, "
                         f"this one has {len(text)}")
    return manifest_take(manifest, shot_id, int(number))


def note_take(manifest: Manifest, key: str, text: str) -> str | None:
    """Record ``text`` (stripped; empty removes it) as the note of take ``key``, about the
    output it has now; returns that output's SHA-256 (``None`` when it has none yet).

    The same errors as :func:`pick_take`, except that any take may carry a note.
    """
    text = text.strip()
    take = check_note(manifest, key, text)
    require_rendered(manifest)
    with store_at(manifest).open_writer() as store:
        found = store.shot_records(take.shot_id)
        sha256 = next((r.sha256 for r in found if r.key == take.key), None)
        store.set_note(take.key, text, sha256)
    return sha256
