"""Polling economy: how many status requests a take costs and how soon a finished task is seen.

Counted on the emulator's side (``polls_per_task``), where the client cannot fudge them. The
delay is from the moment the emulator's task really finished to the moment shotrun started
downloading it (store event ``take_downloading``), as a share of the task time T. The
physical limit is one poll per take and no delay; the two cases are an accurate
``estimated_time`` and one 3x too low (shotrun must then lean on the reported progress).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row

CAP = 8


async def _measure(takes: int, task_time: float, factor: float, root: Path
                   ) -> list[_emu.TakeTiming]:
    manifest = _emu.write_manifest(root, takes)
    async with _emu.emulator(queue_time=0.0, processing_time=task_time,
                             concurrency_cap=CAP, estimate_factor=factor) as emu:
        await _emu.warm_up(emu)
        await _emu.run_against(emu, manifest, CAP)
        return _emu.take_timings(emu, manifest)


def _case(label: str, takes: int, task_time: float, factor: float, poll_target: float
          ) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        timings = asyncio.run(_measure(takes, task_time, factor, Path(tmp)))
    polls = statistics.mean(t.polls for t in timings)
    delays = [max(0.0, t.download_start - t.finished) / task_time for t in timings]
    delay = statistics.mean(delays)
    worst = max(delays)
    return [
        row(f"polling: {label}, status requests per take", round(polls, 2),
            f"<= {poll_target:g}", "1 (one look at the end)", polls <= poll_target),
        row(f"polling: {label}, completion -> download start (share of T)",
            round(delay, 3), "<= 0.15", f"0; worst {worst:.2f} T", delay <= 0.15),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Polls per take and detection delay with an accurate and a 3x-too-low estimate."""
    _emu.quiet_logs()
    takes, task_time = (16, 1.0) if quick else (64, 2.0)
    label = f"N={takes} T={task_time:g}s"
    return [
        *_case(f"{label} estimate accurate", takes, task_time, 1.0, 2.0),
        *_case(f"{label} estimate 3x too low", takes, task_time, 1 / 3, 4.0),
    ]


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
