"""Overhead at scale: what shotrun itself costs per take, and how its memory grows.

Instant tasks and one tiny cached clip, so the run is all shotrun: manifest, store
transitions, HTTP, downloads, verification. Every output is verified by reading all its
video packets without decoding them and decoding two frames (the first and the last keyframe;
the emulator's clips have a single keyframe, so one), and a row shows that share.
``shotrun run`` is a child process and its CPU time (user + system, its threads included)
and peak RSS come from ``os.wait4``, so the emulator's own work in this process is not
counted.

Beside it, :mod:`benchmarks.floor` runs twice against the same emulator: bare (the same
three requests per take with aiohttp and nothing else: the least any Python client could
spend) and ``--durable`` (plus the least work that keeps shotrun's promises: the store's
transitions committed as shotrun commits them, the output checked by decoding, the fsyncs,
the sidecar, in straight-line code). The second is the physical limit for a tool that keeps
those promises; what shotrun spends above it is the cost of its own layers. Two sizes show
the growth: CPU per take should stay flat and memory should grow far slower than the take
count.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row
from runner.emulator import RunningEmulator
from runner.media.verify import verify_video

CPU_TARGET_MS = 2.0
RSS_TARGET_MB = 150.0


@dataclass(frozen=True)
class _Sized:
    """One size's runs (shotrun's, the bare floor's, the durable floor's), one check's cost."""

    shotrun: _emu.ChildRun
    bare: _emu.ChildRun
    durable: _emu.ChildRun
    verify_ms: float


async def _floor(emu: RunningEmulator, takes: int, *flags: str) -> _emu.ChildRun:
    env = {**os.environ, _emu.KEY_ENV: _emu.KEY}
    argv = [sys.executable, "-m", "benchmarks.floor", emu.base_url, str(takes), "32", *flags]
    floor = await asyncio.to_thread(_emu._child, argv, env)
    if floor.code != 0:
        raise RuntimeError(f"benchmarks.floor {' '.join(flags)} exited {floor.code}: "
                           f"{floor.stderr[-2000:]}")
    return floor


async def _measure(takes: int, root: Path) -> tuple[_emu.ChildRun, _emu.ChildRun,
                                                    _emu.ChildRun]:
    """shotrun's run of ``takes`` takes, then the bare and the durable floors of that work."""
    manifest = _emu.write_manifest(root, takes)
    async with _emu.emulator(queue_time=0.0, processing_time=0.0) as emu:
        await _emu.warm_up(emu)
        # Instant tasks report estimated_time 0, which shotrun reads as "unknown" and would
        # wait --poll-max (2 s) before its first check: the run would measure that sleep,
        # 20,000 takes / 32 slots x 2 s = 21 min. Checks every 20 ms keep it about shotrun.
        shotrun = await _emu.run_against(emu, manifest, 32, "--downloads", "8",
                                         "--poll-min", "0.01", "--poll-max", "0.02")
        return shotrun, await _floor(emu, takes), await _floor(emu, takes, "--durable")


def _verify_ms(video: Path) -> float:
    """CPU ms the check of one output costs (median of 5), measured in this process."""
    times = []
    for _ in range(5):
        start = time.process_time()
        verify_video(video, duration=3, width=1280, height=720)
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def _one(takes: int) -> _Sized:
    with tempfile.TemporaryDirectory() as tmp:
        shotrun, bare, durable = asyncio.run(_measure(takes, Path(tmp)))
        verify_ms = _verify_ms(next((Path(tmp) / "out").glob("*/take-1.mp4")))
        return _Sized(shotrun, bare, durable, verify_ms)


def _ms(run: _emu.ChildRun, takes: int) -> float:
    return run.cpu / takes * 1000


def _size_rows(n: int, m: _Sized) -> list[dict[str, Any]]:
    per_take = _ms(m.shotrun, n)
    return [
        row(f"overhead: {n} instant takes, runner CPU per take (ms)", round(per_take, 3),
            f"<= {CPU_TARGET_MS:g}",
            f"bare aiohttp, same 3 requests: {_ms(m.bare, n):.2f} ms; with the promises "
            f"kept: {_ms(m.durable, n):.2f} ms; {m.shotrun.cpu:.1f} s CPU in "
            f"{m.shotrun.wall:.1f} s wall",
            per_take <= CPU_TARGET_MS),
        row(f"overhead: {n} takes, of which verifying the output (ms per take)",
            round(m.verify_ms, 2), "informative", f"the rest: {per_take - m.verify_ms:.1f} ms",
            None),
        # Kernel time is mostly creating a take's three inodes (its folder, output and
        # sidecar) and the fsyncs: on ext4, inode allocation scans for one not recently deleted.
        row(f"overhead: {n} takes, of which in the kernel (ms per take)",
            round(m.shotrun.system / n * 1000, 2), "informative",
            f"bare aiohttp: {m.bare.system / n * 1000:.2f} ms; promises kept: "
            f"{m.durable.system / n * 1000:.2f} ms", None),
        row(f"overhead: {n} instant takes, runner peak RSS (MB)", round(m.shotrun.max_rss_mb, 1),
            f"<= {RSS_TARGET_MB:g} at 20,000" if n == 20_000 else "informative",
            "python + imports ~60 MB",
            m.shotrun.max_rss_mb <= RSS_TARGET_MB if n == 20_000 else None),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """CPU ms per take and peak RSS at a small and a large size, and their growth."""
    _emu.quiet_logs()
    small, large = (50, 200) if quick else (5_000, 20_000)
    measured = {n: _one(n) for n in (small, large)}
    rows = [r for n, m in measured.items() for r in _size_rows(n, m)]
    a, b = measured[small], measured[large]

    def marginal(which: Callable[[_Sized], _emu.ChildRun]) -> float:
        """CPU ms an extra take costs: start-up (interpreter, imports, manifest) is paid once
        per run, so the difference between the two sizes is what the takes added."""
        return (which(b).cpu - which(a).cpu) / (large - small) * 1000

    own = marginal(lambda m: m.shotrun)
    bare = marginal(lambda m: m.bare)
    durable = marginal(lambda m: m.durable)
    rows.append(row(f"overhead: CPU per extra take, {small} -> {large} takes (ms)",
                    round(own, 3), f"<= {CPU_TARGET_MS:g}",
                    f"bare aiohttp: {bare:.2f} ms; with the promises kept: {durable:.2f} ms",
                    own <= CPU_TARGET_MS))
    rows.append(row("overhead: per extra take, shotrun / the floor with its promises (ratio)",
                    round(own / durable, 2) if durable > 0 else "n/a", "informative",
                    f"shotrun's own layers: {own - durable:.2f} ms per take", None))
    cpu_growth = (b.shotrun.cpu / large) / (a.shotrun.cpu / small)
    rss_per_take_kb = (b.shotrun.max_rss_mb - a.shotrun.max_rss_mb) * 1024 / (large - small)
    rows.append(row(f"overhead: CPU per take, {large} vs {small} (ratio)", round(cpu_growth, 2),
                    "<= 1.2 (linear)", "1.0", cpu_growth <= 1.2))
    rows.append(row("overhead: RSS growth per extra take (KB)", round(rss_per_take_kb, 2),
                    "informative", "", None))
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
