"""Slot utilisation: does shotrun keep every slot the account allows busy?

The emulator caps tasks in flight at C and each task takes T seconds, so no client can finish
N takes faster than ``ceil(N / C) * T``: that is the physical limit. The figure is the
makespan (first creation request to last video on disk, from the store's own timestamps)
divided by it. Three cases: fixed T with shotrun told the cap; T jittered +-50 %; and the cap
unknown to shotrun (its concurrency twice the cap), so it must find it from 429s.
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row

CAP = 8


async def _makespan(takes: int, task_time: float, jitter: float, concurrency: int,
                    root: Path) -> tuple[float, dict[str, Any]]:
    manifest = _emu.write_manifest(root, takes)
    async with _emu.emulator(queue_time=0.0, processing_time=task_time, jitter=jitter,
                             concurrency_cap=CAP) as emu:
        await _emu.warm_up(emu)
        await _emu.run_against(emu, manifest, concurrency)
        stats = emu.stats()
    (first, last), = _emu.store_rows(
        manifest, "SELECT MIN(submitting_at), MAX(downloaded_at) FROM takes")
    return last - first, stats


def _case(name: str, takes: int, task_time: float, jitter: float, concurrency: int,
          target: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        makespan, stats = asyncio.run(
            _makespan(takes, task_time, jitter, concurrency, Path(tmp)))
    ideal = math.ceil(takes / CAP) * task_time
    ratio = makespan / ideal
    detail = f"ideal {ideal:g} s; got {makespan:.2f} s"
    if stats["rate_limited"]:
        detail += f"; {stats['rate_limited']} x 429"
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
