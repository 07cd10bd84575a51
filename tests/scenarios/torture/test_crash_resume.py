"""Crash and resume: ``shotrun run`` SIGKILLed at random moments, resumed each time.

The moments are picked from real progress signals, never from a clock: a creation request
reaching the emulator (the answer may be lost: an ambiguous submission), the store's WAL
growing (a transaction being written), a ``.part`` file present (a download under way), a
new ``.mp4`` appearing (the rename just happened, the store may not know yet), a take turning
done, a poll (``SHOTRUN_TORTURE_SEED`` picks another sequence). Afterwards the audit must
hold and the gateway must not have been paid for more duplicate creations than the store
admits as ambiguous. The same again with the store lost (deleted, or emptied) after every
other kill: the runs rebuild it from the output folder and still pay once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.emulator import run_emulator
from tests.helpers.run import store_rows, wait_for
from tests.helpers.torture import (
    PROVIDERS,
    Scale,
    audit,
    emulator,
    env,
    finish,
    manifest,
    run_args,
    store_path,
)

MOMENTS = ("create", "store", "part", "rename", "done", "poll")


def _wal_state(path: Path) -> tuple[int, int]:
    wal = path.with_name(path.name + "-wal")
    try:
        st = wal.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


def _files(out: Path, pattern: str) -> set[Path]:
    try:
        return set(out.rglob(pattern))
    except FileNotFoundError:  # a folder renamed away while walking
        return set()


def moment(kind: str, root: Path, stats: Callable[[], dict[str, int]],
           rng: random.Random) -> Callable[[], bool]:
    """A predicate that becomes true at the next moment of this kind."""
    out, store = root / "out", store_path(root)
    now = stats()
    if kind == "create":
        target = now["creation_requests"] + rng.randint(1, 3)
        return lambda: stats()["creation_requests"] >= target
    if kind == "poll":
        target = now["polls"] + rng.randint(1, 8)
        return lambda: stats()["polls"] >= target
    if kind == "store":
        wal = _wal_state(store)
        return lambda: _wal_state(store) != wal and store.exists()
    if kind == "part":
        return lambda: bool(_files(out, "*.part"))
    if kind == "rename":
        seen = _files(out, "*.mp4")
        return lambda: bool(_files(out, "*.mp4") - seen)
    done = sum(1 for _, status in store_rows(store) if status == "done")
    return lambda: sum(1 for _, s in store_rows(store) if s == "done") > done


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_sigkill_at_random_moments_then_resume_finishes_everything_and_pays_once(
        tmp_path: Path, scale: Scale, provider: str) -> None:
    await _kill_and_resume(tmp_path, scale, provider)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_sigkill_with_the_store_lost_between_kills_still_pays_once(
        tmp_path: Path, scale: Scale, provider: str) -> None:
    """As above, and after every other kill the store is lost the ways a user loses it:
    deleted alone (its write-ahead log left behind), deleted with its companions, or emptied
    to 0 bytes. Each next run rebuilds it from the sidecars and the intents journal."""
    losses = await _kill_and_resume(tmp_path, scale, provider, lose_store=True)
    assert losses >= 2, losses


LOSSES = ("deleted", "deleted with its WAL", "emptied")


def _lose_store(store: Path, how: str) -> None:
    """Lose the store as a user would: the file deleted, with its companions, or emptied."""
    if how == "emptied":
        if store.exists():
            store.write_bytes(b"")
        return
    store.unlink(missing_ok=True)
    if how == "deleted with its WAL":
        for suffix in ("-wal", "-shm"):
            store.with_name(store.name + suffix).unlink(missing_ok=True)


async def _kill_and_resume(tmp_path: Path, scale: Scale, provider: str, *,
                           lose_store: bool = False) -> int:
    """SIGKILL runs at moments of every kind, then finish; the audit and the money checks.

    ``lose_store``: after every other kill the store is lost (:func:`_lose_store`); returns
    how many times it was.
    """
    losses = 0
    count = scale.takes
    path = manifest(tmp_path, count, api="  concurrency: 3\n")
    rng = random.Random(int(os.environ.get("SHOTRUN_TORTURE_SEED", "20261124")))
    kills: dict[str, int] = {}
    # Slow enough that a run does not finish between two moments; cached renders keep the
    # download small.
    # The long run also has a flaky gateway: kills land in the middle of retries too.
    chaos = ({"error_rates": {"500": 0.05, "503": 0.05, "429": 0.05}, "reset_rate": 0.03,
              "truncate_rate": 0.03} if scale.long else {})
    settings = emulator(processing_time=0.4, queue_time=0.05, download_rate=300_000, seed=3,
                        **chaos)
    async with run_emulator(settings, provider=provider) as emu:
        args = run_args(path, emu.base_url, "--concurrency", "3", "--provider", provider)
        finished = False
        attempts = 0
        while sum(kills.values()) < scale.kills and attempts < scale.kills * 4:
            attempts += 1
            # Every kind of moment once first, then at random.
            kind = MOMENTS[attempts - 1] if attempts <= len(MOMENTS) else rng.choice(MOMENTS)
            proc = await asyncio.create_subprocess_exec(
                *args, env=env(), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            reached = await wait_for(moment(kind, tmp_path, emu.stats, rng), proc,
                                     timeout=120.0)
            if reached:
                proc.send_signal(signal.SIGKILL)
                kills[kind] = kills.get(kind, 0) + 1
            await proc.wait()
            if reached and lose_store and sum(kills.values()) % 2 == 0:
                _lose_store(store_path(tmp_path), LOSSES[losses % len(LOSSES)])
                losses += 1
            if not reached and audit_done(tmp_path, count):
                finished = True
                break
        # A take whose creation was cut twice is held, never resubmitted in a loop;
        # --retry-failed is the user's explicit "resubmit it".
        code, out, _ = await finish([*args, "--json"])
        stats = emu.stats()
    assert code == 0, out
    result = audit(tmp_path, count)
    assert finished or sum(kills.values()) >= scale.kills, kills
    assert sum(kills.values()) >= min(scale.kills, 4), kills
    assert stats["accepted_tasks"] - count <= result.ambiguous, (stats, result.ambiguous)
    assert stats["duplicate_payloads"] <= result.ambiguous, (stats, result.ambiguous)
    if provider == "kling":  # a lost creation is looked up by its id: never ambiguous
        assert result.ambiguous == 0 and stats["accepted_tasks"] == count, stats
    print(f"kills by moment: {kills}; ambiguous {result.ambiguous}; "
          f"accepted {stats['accepted_tasks']} for {count} takes; store lost {losses} times")
    return losses


def audit_done(root: Path, count: int) -> bool:
    rows = store_rows(store_path(root))
    return len(rows) == count and all(status == "done" for _, status in rows)
