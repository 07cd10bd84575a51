"""Polling economy: how many status requests a take costs and how soon a finished task is seen.

Counted on the emulator's side (``polls_per_task``), where the client cannot fudge them. The
delay is from the moment the emulator's task really finished to the moment shotrun started
downloading it (store event ``take_downloading``), as a share of the task time T. The
physical limit is one poll per take and no delay.

The emulator reports ``estimated_time`` in whole seconds, as the documented gateway does
(``300``), so T = 2 s reports 2 and a hint "3x too low" reports round(2/3) = 1 (2x too low;
in quick mode T = 1 s reports 0: no hint at all). The cases: an accurate hint, one too low,
each with the progress reported and left out of every answer (``progress: none``), and task
times jittered +-30 % around the hint. Each case runs twice in the same sitting, on the same
machine load: shotrun as it is (its first look aimed by the task times the run measured,
``runner/scheduler/calibration.py``) and with ``--poll-calibration off`` (the first look at
3/4 of the hint, as before calibration), whose figures fill the ``limit/peer`` column. Quick
mode runs the second only for the accurate case, and more takes than the concurrency cap's
first wave (which has nothing to learn from yet and always costs two looks).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row

CAP = 8
CALIBRATION_OFF = ("--poll-calibration", "off")


@dataclass(frozen=True)
class Case:
    """One emulator behaviour and what shotrun must achieve against it."""

    label: str
    factor: float = 1.0  # estimate_factor
    progress: str = "linear"
    jitter: float = 0.0
    poll_target: float | None = None  # a fixed bound on status requests per take
    no_worse: bool = False  # bound: what the old policy costs in the same sitting
    compare_quick: bool = False  # also measure the old policy in quick mode


CASES = (
    Case("estimate accurate", poll_target=1.3, compare_quick=True),
    Case("estimate 3x too low", factor=1 / 3, poll_target=4.0),
    Case("progress none, estimate accurate", progress="none", no_worse=True),
    Case("progress none, estimate 3x too low", factor=1 / 3, progress="none", no_worse=True),
    Case("task times jittered +-30 %", jitter=0.3),
)


@dataclass(frozen=True)
class Figures:
    polls: float  # status requests per take, mean
    delay: float  # completion -> download start, mean, share of T
    worst: float  # the same, worst take


async def _measure(takes: int, task_time: float, case: Case, root: Path,
                   extra: tuple[str, ...]) -> list[_emu.TakeTiming]:
    manifest = _emu.write_manifest(root, takes)
    async with _emu.emulator(queue_time=0.0, processing_time=task_time,
                             concurrency_cap=CAP, estimate_factor=case.factor,
                             progress=case.progress, jitter=case.jitter) as emu:
        await _emu.warm_up(emu)
        await _emu.run_against(emu, manifest, CAP, *extra)
        return _emu.take_timings(emu, manifest)


def _figures(takes: int, task_time: float, case: Case, extra: tuple[str, ...] = ()
             ) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        timings = asyncio.run(_measure(takes, task_time, case, Path(tmp), extra))
    delays = [max(0.0, t.download_start - t.finished) / task_time for t in timings]
    return Figures(statistics.mean(t.polls for t in timings), statistics.mean(delays),
                   max(delays))


def _rows(label: str, case: Case, new: Figures, old: Figures | None) -> list[dict[str, Any]]:
    target: str = ""
    passed: bool | None = None
    if case.poll_target is not None:
        target, passed = f"<= {case.poll_target:g}", new.polls <= case.poll_target
    elif case.no_worse and old is not None:
        target, passed = "<= calibration off", new.polls <= old.polls
    before = (f"{old.polls:.2f} with --poll-calibration off" if old is not None
              else "calibration off: not measured in quick mode")
    before_delay = (f"{old.delay:.3f} with --poll-calibration off; worst here {new.worst:.2f} T"
                    if old is not None else f"worst here {new.worst:.2f} T")
    return [
        row(f"polling: {label} {case.label}, status requests per take", round(new.polls, 2),
            target, before, passed),
        row(f"polling: {label} {case.label}, completion -> download start (share of T)",
            round(new.delay, 3), "<= 0.15", before_delay, new.delay <= 0.15),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Polls per take and detection delay, calibrated and not, for each case."""
    _emu.quiet_logs()
    takes, task_time = (48, 1.0) if quick else (64, 2.0)
    rows: list[dict[str, Any]] = []
    for case in CASES:
        new = _figures(takes, task_time, case)
        old = _figures(takes, task_time, case, CALIBRATION_OFF) \
            if not quick or case.compare_quick else None
        hint = round(task_time * case.factor)  # what the emulator reports, in whole seconds
        label = f"N={takes} T={task_time:g}s hint {hint:g}s"
        rows.extend(_rows(label, case, new, old))
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
