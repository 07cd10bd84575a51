"""Continuity and takes in the store: picked takes, and which source output a take was cut from.

A dependent take (``start_frame: {from_shot: s01, frame: last}``) has a fingerprint that can
only be complete once its source is rendered: the frame it starts from is part of what makes
it "the same". Recomputing fingerprints with the source's hash at every sync would make a
take whose source was still rendering look changed on the next run. So the store keeps, per
take, the SHA-256 of every source output it was *actually submitted with*
(``takes.frame_hashes``, written just before the creation is committed), and a sync compares
that with the source's chosen output now: a different one (the source was rendered again, or
another take was picked) re-renders the dependent with the reason "source changed", and so
on down the chain. Takes in flight are never touched here (a task id is never resubmitted);
only *done* takes can become stale.

The chosen take of a shot is the one the user picked (``shotrun pick``), as long as that
take's output is still the one that was picked, else the take that finished first (by
download time; the lowest number on a tie). "First finished" rather than "take 1" keeps the
choice stable: retrying a failed take 1 later does not move its dependents' source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from runner.core.model import FrameRef, Take
from runner.state.base import StoreBase
from runner.state.records import (
    RECORD_COLUMNS,
    RECORD_SELECT,
    TakeOutput,
    TakeRecord,
    TakeStatus,
    record_from_row,
)
from runner.state.sql import Connection

SOURCE_CHANGED = "source changed"


@dataclass(frozen=True, slots=True)
class Pick:
    """The take a user chose for a shot, and the hash of the output they chose."""

    shot_id: str
    take: int
    sha256: str | None
    picked_at: float


def frame_sources(take: Take) -> tuple[str, ...]:
    """The shot ids whose outputs ``take`` takes a frame from (``from_shot``), in the order
    its media are sent (:meth:`runner.core.model.TakeRequest.media`), each once."""
    found: list[str] = []
    for item in take.request.media():
        if isinstance(item, FrameRef) and item.shot_id not in found:
            found.append(item.shot_id)
    return tuple(found)


# A full record, or the narrow view of it ``status`` reads for 20,000 takes.
R = TypeVar("R", bound=TakeRecord | TakeOutput)


def choose(records: Iterable[R], pick: Pick | None) -> R | None:
    """The chosen take among one shot's ``records``: the valid pick, else the first finished.

    A pick holds while its take is done with the very output that was picked; a take rendered
    again since (another fingerprint) falls back to the default rather than silently
    choosing a video the user never saw.
    """
    done = sorted((r for r in records if r.status is TakeStatus.DONE and r.output_path),
                  key=lambda r: (r.downloaded_at or float("inf"), r.take))
    if pick is not None:
        for record in done:
            if record.take == pick.take and (pick.sha256 is None or record.sha256 == pick.sha256):
                return record
    return done[0] if done else None


def chosen_records(records: Iterable[R], chosen_picks: Mapping[str, Pick],
                   fingerprints: Mapping[str, str] | None = None) -> dict[str, tuple[R, bool]]:
    """Per shot, its chosen record and whether the user picked it (status, the report and
    export all choose so).

    With ``fingerprints`` (take key -> the manifest's fingerprint), records of an older
    version of a take do not count.
    """
    by_shot: dict[str, list[R]] = {}
    for record in records:
        if fingerprints is None or fingerprints.get(record.key) == record.fingerprint:
            by_shot.setdefault(record.shot_id, []).append(record)
    found: dict[str, tuple[R, bool]] = {}
    for shot_id, shot_records in by_shot.items():
        pick = chosen_picks.get(shot_id)
        best = choose(shot_records, pick)
        if best is not None:
            found[shot_id] = (best, pick is not None and pick.take == best.take)
    return found


def chosen_takes(records: Iterable[TakeRecord | TakeOutput], chosen_picks: Mapping[str, Pick],
                 fingerprints: Mapping[str, str] | None = None) -> dict[str, tuple[int, bool]]:
    """Per shot, its chosen take number and whether the user picked it (status, report)."""
    return {shot_id: (record.take, picked) for shot_id, (record, picked)
            in chosen_records(records, chosen_picks, fingerprints).items()}


# ----------------------------------------------------------------------------- store access
def record_frame_hashes(store: StoreBase, key: str, hashes: Mapping[str, str]) -> None:
    """Remember the source outputs (shot id -> SHA-256) take ``key`` is being submitted with."""
    with store._write() as conn:
        conn.execute("UPDATE takes SET frame_hashes = ? WHERE key = ?",
                     (json.dumps(dict(hashes), sort_keys=True), key))
        store._event(conn, key, "frame_sources_recorded", sources=dict(hashes))


def read_frame_hashes(conn: Connection) -> dict[str, dict[str, str]]:
    """Per take key, the source outputs it was submitted with (only takes that have any)."""
    rows = conn.execute("SELECT key, frame_hashes FROM takes WHERE frame_hashes IS NOT NULL")
    return {row[0]: json.loads(row[1]) for row in rows}


def read_picks(conn: Connection) -> dict[str, Pick]:
    """Every pick, by shot id."""
    rows = conn.execute("SELECT shot_id, take, sha256, picked_at FROM picks")
    return {row[0]: Pick(row[0], int(row[1]), row[2], float(row[3])) for row in rows}


def picks(store: StoreBase) -> dict[str, Pick]:
    """Every pick of the store, by shot id (a reader may call it)."""
    with store._read() as conn:
        return read_picks(conn)


def frame_hashes(store: StoreBase) -> dict[str, dict[str, str]]:
    """Per take key, the source outputs it was submitted with (a reader may call it)."""
    with store._read() as conn:
        return read_frame_hashes(conn)


def set_pick(store: StoreBase, shot_id: str, take: int, sha256: str | None) -> None:
    """Record ``take`` as the chosen take of ``shot_id`` (replacing an earlier pick)."""
    with store._write() as conn:
        conn.execute(
            "INSERT INTO picks (shot_id, take, sha256, picked_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (shot_id) DO UPDATE SET take = excluded.take,"
            " sha256 = excluded.sha256, picked_at = excluded.picked_at",
            (shot_id, take, sha256, store._clock()),
        )
        store._event(conn, f"{shot_id}/take-{take}", "take_picked", shot=shot_id, take=take,
                     sha256=sha256)


# ----------------------------------------------------------------------------- sync
def stale_dependents(
    conn: Connection,
    takes: Sequence[Take],
    rows: Mapping[str, Sequence[Any]],
    restarting: Iterable[str],
) -> dict[str, str]:
    """Done takes whose source output is no longer the chosen one: key -> "source changed".

    ``rows`` are the stored rows by key (before this sync, in ``RECORD_SELECT`` order),
    ``restarting`` the keys whose fingerprint changed (their outputs go to history, so they
    count as not done). A stale take restarts too, so its own dependents are checked again
    until nothing changes.
    """
    dependents = [(take, frame_sources(take)) for take in takes]
    dependents = [(take, sources) for take, sources in dependents if sources]
    if not dependents:
        return {}
    records = {key: record_from_row(row) for key, row in rows.items()}
    used = read_frame_hashes(conn)
    chosen_picks = read_picks(conn)
    by_shot: dict[str, list[TakeRecord]] = {}
    for record in records.values():
        by_shot.setdefault(record.shot_id, []).append(record)
    gone = set(restarting)
    stale: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for take, sources in dependents:
            mine = records.get(take.key)
            if take.key in gone or mine is None or mine.status is not TakeStatus.DONE:
                continue
            hashes = used.get(take.key)
            if hashes is None:
                continue  # rendered before shotrun kept sources: nothing to compare with
            for shot_id in sources:
                current = choose((r for r in by_shot.get(shot_id, []) if r.key not in gone),
                                 chosen_picks.get(shot_id))
                if hashes.get(shot_id) != (current.sha256 if current else None):
                    stale[take.key] = SOURCE_CHANGED
                    gone.add(take.key)
                    changed = True
                    break
    return stale


def source_changes(store: StoreBase, takes: Sequence[Take]) -> dict[str, str]:
    """What :func:`stale_dependents` would find if ``takes`` were synced now (for ``plan``);
    read-only, so it works beside a live run."""
    if not any(frame_sources(take) for take in takes):
        return {}  # no chains: no need to read every record (status of 20,000 takes)
    with store._read() as conn:
        rows = {row[0]: tuple(row)
                for row in conn.execute(f"SELECT {RECORD_SELECT} FROM takes")}
        at = RECORD_COLUMNS.index("fingerprint")
        changing = [t.key for t in takes if t.key in rows and rows[t.key][at] != t.fingerprint]
        return stale_dependents(conn, takes, rows, changing)
