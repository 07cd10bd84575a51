"""Slot utilisation: does shotrun keep every slot the account allows busy?

The emulator caps tasks in flight at C and each task takes T seconds, so no client can get N
tasks done at the gateway faster than ``ceil(N / C) * T``: that is the physical limit. The
figure is the makespan of the gateway work, from shotrun's first creation request (the
store's first ``take_submitting`` event) to the moment the last task finished at the emulator
(its own clock), divided by that limit: every gap between a task ending and the next one
starting in its slot (seeing the end, freeing the slot, sending the next creation, 429s) is
in it. What is not slot utilisation is shown beside it, not mixed in: the tail from the last
task's end to its video verified on disk, and the start-up from spawning ``shotrun run`` to
its first creation request. Three cases: fixed T with shotrun told the cap; T jittered
+-50 %; and the cap unknown to shotrun (its concurrency twice the cap), so it must find it
from 429s.
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row

CAP = 8


@dataclass(frozen=True)
class Timeline:
    """One run's landmarks, wall-clock seconds."""

    spawned: float  # ``shotrun run`` started
    first_submit: float  # its first creation request (store event take_submitting)
    last_finished: float  # the last task finished at the emulator
    last_on_disk: float  # the last video verified and filed (store: downloaded_at)
    rate_limited: int  # 429s the emulator answered during the run
    busy: float  # seconds of task time at the gateway, summed over the tasks


async def _timeline(takes: int, task_time: float, jitter: float, concurrency: int,
                    root: Path) -> Timeline:
    manifest = _emu.write_manifest(root, takes)
    async with _emu.emulator(queue_time=0.0, processing_time=task_time, jitter=jitter,
                             concurrency_cap=CAP) as emu:
        await _emu.warm_up(emu)
        before = emu.stats()["rate_limited"]
        child = await _emu.run_against(emu, manifest, concurrency)
        timings = _emu.take_timings(emu, manifest)
        rate_limited = emu.stats()["rate_limited"] - before
    if len(timings) != takes:
        raise RuntimeError(f"{len(timings)} of {takes} takes done")
    (first,), = _emu.store_rows(
        manifest, "SELECT MIN(at) FROM events WHERE event = 'take_submitting'")
    return Timeline(child.spawned_at, first, max(t.finished for t in timings),
                    max(t.downloaded for t in timings), rate_limited,
                    sum(t.finished - t.started for t in timings))


def _case(name: str, takes: int, task_time: float, jitter: float, concurrency: int,
          target: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        line = asyncio.run(_timeline(takes, task_time, jitter, concurrency, Path(tmp)))
    ideal = math.ceil(takes / CAP) * task_time
    makespan = line.last_finished - line.first_submit
    ratio = makespan / ideal
    tail = line.last_on_disk - line.last_finished
    startup = line.first_submit - line.spawned
    # Where the gap went: slot time not spent on a task, per task (seeing its end, freeing
    # the slot, the next creation's commit and trip, refused creations, the last round's
    # stragglers when T varies).
    idle = (CAP * makespan - line.busy) / takes
    detail = (f"ideal {ideal:g} s; got {makespan:.2f} s; slots idle {idle * 1000:.0f} ms per "
              f"task; then {tail:.2f} s to the last file; start-up {startup:.2f} s")
    if line.rate_limited:
        detail += f"; {line.rate_limited} x 429"
    return row(f"slots: {name} (makespan/ideal)", round(ratio, 3), f"<= {target:g}",
               detail, ratio <= target)


def run(quick: bool) -> list[dict[str, Any]]:
    """Makespan over the ideal for a fixed, a jittered and an unknown cap."""
    _emu.quiet_logs()
    takes, task_time = (32, 1.0) if quick else (200, 2.0)
    label = f"N={takes} C={CAP} T={task_time:g}s"
    return [
        _case(f"{label}, cap known", takes, task_time, 0.0, CAP, 1.05),
        _case(f"{label} +-50%, cap known", takes, task_time, 0.5, CAP, 1.15),
        _case(f"{label}, cap unknown (concurrency {2 * CAP})", takes, task_time, 0.0,
              2 * CAP, 1.15),
    ]


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
