"""What the run benchmarks share: a manifest of N takes, an emulator, ``shotrun run`` as a child.

The emulator runs in the benchmark's own event loop and ``shotrun`` runs as a separate
``python -m runner`` process, so that the runner's CPU time and peak RSS are read from the
kernel's accounting of that process alone (``os.wait4``), not mixed with the emulator's.

Poll bounds: a real gateway renders in minutes and shotrun polls it no faster than every 2 s;
the benchmarks compress time (T = 1-2 s), so they pass bounds compressed alike
(:data:`POLL_FLAGS`); the policy (first check near the estimate, then a share of what is
left) is the one users get.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from runner.emulator import EmulatorSettings, RunningEmulator, run_emulator

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "SHOTRUN_BENCH_KEY"
KEY = "sk-bench-0123456789abcdefghijklmnop"
POLL_FLAGS = ("--poll-min", "0.05", "--poll-max", "2", "--backoff-base", "0.05",
              "--backoff-cap", "1", "--submit-rate", "0")


def quiet_logs() -> None:
    """Warnings and errors only: a benchmark's own log lines would cost what they measure."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def write_manifest(root: Path, takes: int, *, takes_per_shot: int = 1,
                   name: str = "bench") -> Path:
    """A manifest of ``takes`` text-only 720p takes (``takes_per_shot`` per shot)."""
    lines = [f"version: 1\nname: {name}\noutput_dir: out\n",
             f"api:\n  api_key_env: {KEY_ENV}\n",
             "defaults: {resolution: 720p, duration: 3}\nshots:\n"]
    shots, rest = divmod(takes, takes_per_shot)
    for n in range(shots + (1 if rest else 0)):
        count = takes_per_shot if n < shots else rest
        lines.append(f'  - id: s{n:06d}\n    prompt: "shot {n}: the coast at dawn, slow '
                     f'dolly in"\n    takes: {count}\n')
    path = root / "shots.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@asynccontextmanager
async def emulator(**settings: Any) -> AsyncIterator[RunningEmulator]:
    """A loopback emulator with cached renders and the benchmark key."""
    base: dict[str, Any] = {"render": "cached", "api_key": KEY, "seed": 7}
    base.update(settings)
    async with run_emulator(EmulatorSettings(**base)) as emu:
        yield emu


@dataclass(frozen=True)
class ChildRun:
    """What one ``shotrun`` process did and cost."""

    code: int
    wall: float  # seconds
    cpu: float  # user + system seconds of the child (and its threads)
    max_rss_mb: float
    stdout: str
    stderr: str
    spawned_at: float = 0.0  # wall clock (time.time()) when the process was started
    system: float = 0.0  # of ``cpu``, the seconds spent in the kernel on the child's behalf


# The child is started by a small launcher process, which reports the child's usage: a
# process forked from this one (which holds the emulator) inherits its resident pages until
# exec, and the kernel keeps that peak in the child's ru_maxrss (a ``pass`` child of a 300 MB
# parent reported 374 MB). The launcher is small, so its fork taints nothing. It also takes
# the wall time and spawn moment itself, so its own start-up is not counted.
_LAUNCHER = """
import json, os, subprocess, sys, time
spawned_at = time.time()
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
               "max_rss_kb": usage.ru_maxrss, "spawned_at": spawned_at,
               "system": usage.ru_stime}, out)
"""


def _child(argv: Sequence[str], env: dict[str, str]) -> ChildRun:
    # Output goes to files, not pipes, so a chatty child never blocks on a full pipe.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        subprocess.run([sys.executable, "-c", _LAUNCHER, str(usage_file), *argv], env=env,
                       stdout=out, stderr=err, cwd=ROOT, check=False)
        usage = json.loads(usage_file.read_text(encoding="utf-8"))
        out.seek(0)
        err.seek(0)
        return ChildRun(usage["code"], usage["wall"], usage["cpu"], usage["max_rss_kb"] / 1024,
                        out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"), usage["spawned_at"],
                        usage["system"])


def shotrun_argv(command: str, manifest: Path, *extra: str) -> list[str]:
    """``python -m runner --quiet COMMAND MANIFEST EXTRA...`` (no live panel, no info logs)."""
    return [sys.executable, "-m", "runner", "--quiet", command, str(manifest), *extra]


async def shotrun(command: str, manifest: Path, *extra: str,
                  keys: dict[str, str] | None = None) -> ChildRun:
    """Run ``shotrun COMMAND`` in a child process without blocking the emulator's loop;
    ``keys``: more variables for it (a second account's key)."""
    env = {**os.environ, KEY_ENV: KEY, "NO_COLOR": "1", **(keys or {})}
    return await asyncio.to_thread(_child, shotrun_argv(command, manifest, *extra), env)


async def run_against(emu: RunningEmulator, manifest: Path, concurrency: int,
                      *extra: str) -> ChildRun:
    """``shotrun run`` of ``manifest`` against ``emu``; a failed run raises with its stderr."""
    result = await shotrun("run", manifest, "--base-url", emu.base_url, "--no-report",
                           "--concurrency", str(concurrency), *POLL_FLAGS, *extra)
    if result.code != 0:
        raise RuntimeError(f"shotrun run exited {result.code}: {result.stderr[-2000:]}")
    return result


def store_rows(manifest: Path, sql: str) -> list[sqlite3.Row]:
    """Rows of a read-only query on the manifest's state store."""
    path = manifest.parent / "out" / ".shotrun" / "state.sqlite"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


async def warm_up(emu: RunningEmulator) -> None:
    """Render the cached clip of the benchmark takes' shape before timing anything.

    The first ``render: cached`` task of a size pays for encoding the clip (~1 s), which is
    the emulator's cost, not shotrun's; one instant task made here takes it out of the
    figures. Counters are not reset: read them as differences if it matters.
    """
    from runner.providers.gateway.client import GatewayClient

    settings = emu.settings
    emu.update(queue_time=0.0, processing_time=0.0, jitter=0.0)
    payload = {"model": "kling-o3-reference-to-video", "prompt": "warm-up",
               "resolution": "720p", "aspect_ratio": "16:9", "duration": 3}
    try:
        async with GatewayClient(emu.base_url, emu.files_url, KEY) as client:
            state = await client.create_task(payload)
            while state.status not in ("completed", "failed"):
                await asyncio.sleep(0.02)  # polling the emulator, as any client would
                state = await client.get_task(state.task_id)
    finally:
        emu.settings = settings


@dataclass(frozen=True)
class TakeTiming:
    """One take's story in wall-clock seconds, joined from the store and the emulator."""

    key: str
    submitting: float  # shotrun committed the intent to create
    finished: float  # the emulator's task finished (its true completion time)
    detected: float  # shotrun learned it (store: completed_at)
    download_start: float  # store event take_downloading
    downloaded: float  # store: downloaded_at
    polls: int  # status queries the emulator answered for the task
    started: float = 0.0  # the emulator accepted the task (its clock, as wall clock)


def take_timings(emu: RunningEmulator, manifest: Path) -> list[TakeTiming]:
    """Every finished take's timing; the emulator must still be running (its clock is read)."""
    offset = time.time() - emu.core.now()  # emulator loop clock -> wall clock
    polls = emu.stats()["polls_per_task"]
    starts = {r["key"]: r["at"] for r in store_rows(
        manifest, "SELECT key, MIN(at) AS at FROM events WHERE event = 'take_downloading'"
                  " GROUP BY key")}
    timings = []
    for r in store_rows(manifest, "SELECT key, task_id, submitting_at, completed_at,"
                                  " downloaded_at FROM takes WHERE status = 'done'"):
        task = emu.core.board.get(r["task_id"])
        if task is None:
            continue
        finished = task.started + task.queue + task.processing + offset
        timings.append(TakeTiming(r["key"], r["submitting_at"], finished, r["completed_at"],
                                  starts.get(r["key"], r["completed_at"]), r["downloaded_at"],
                                  int(polls.get(r["task_id"], 0)), task.started + offset))
    return timings

