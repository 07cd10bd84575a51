"""Overhead at scale: what shotrun itself costs per take, and how its memory grows.

Instant tasks and one tiny cached clip, so the run is all shotrun: manifest, store
transitions, HTTP, downloads, verification. Every output is verified by reading all its
video packets without decoding them and decoding two frames (the first and the last keyframe;
the emulator's clips have a single keyframe, so one), and a row shows that share.
``shotrun run`` is a child process and its CPU time (user + system, its threads included)
and peak RSS come from ``os.wait4``, so the emulator's own work in this process is not
counted. Beside it, :mod:`benchmarks.floor` does the same three requests per take with bare
aiohttp and nothing else (no store, fsync, check, sidecar or log): the least any Python
client could spend, the physical limit for this figure. Two sizes show the growth: CPU per
take should stay flat and memory should grow far slower than the take count.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row
from runner.verify import verify_video

CPU_TARGET_MS = 2.0
RSS_TARGET_MB = 150.0


async def _measure(takes: int, root: Path) -> tuple[_emu.ChildRun, _emu.ChildRun]:
    """shotrun's run of ``takes`` takes, then the bare-aiohttp floor of the same work."""
    manifest = _emu.write_manifest(root, takes)
    async with _emu.emulator(queue_time=0.0, processing_time=0.0) as emu:
        await _emu.warm_up(emu)
        # Instant tasks report estimated_time 0, which shotrun reads as "unknown" and would
        # wait --poll-max (2 s) before its first check: the run would measure that sleep,
        # 20,000 takes / 32 slots x 2 s = 21 min. Checks every 20 ms keep it about shotrun.
        shotrun = await _emu.run_against(emu, manifest, 32, "--downloads", "8",
                                         "--poll-min", "0.01", "--poll-max", "0.02")
        env = {**os.environ, _emu.KEY_ENV: _emu.KEY}
        floor = await asyncio.to_thread(
            _emu._child, [sys.executable, "-m", "benchmarks.floor", emu.base_url,
                          str(takes), "32"], env)
        if floor.code != 0:
            raise RuntimeError(f"benchmarks.floor exited {floor.code}: {floor.stderr[-2000:]}")
        return shotrun, floor


def _verify_ms(video: Path) -> float:
    """CPU ms the check of one output costs (median of 5), measured in this process."""
    times = []
    for _ in range(5):
        start = time.process_time()
        verify_video(video, duration=3, width=1280, height=720)
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def _one(takes: int) -> tuple[_emu.ChildRun, _emu.ChildRun, float]:
    with tempfile.TemporaryDirectory() as tmp:
        result, floor = asyncio.run(_measure(takes, Path(tmp)))
        return result, floor, _verify_ms(next((Path(tmp) / "out").glob("*/take-1.mp4")))


def run(quick: bool) -> list[dict[str, Any]]:
    """CPU ms per take and peak RSS at a small and a large size, and their growth."""
    _emu.quiet_logs()
    small, large = (50, 200) if quick else (5_000, 20_000)
    measured = {n: _one(n) for n in (small, large)}
    runs = {n: result for n, (result, _, _) in measured.items()}
    rows = []
    for n, (result, floor, verify_ms) in measured.items():
        per_take = result.cpu / n * 1000
        floor_ms = floor.cpu / n * 1000
        rows.append(row(f"overhead: {n} instant takes, runner CPU per take (ms)",
                        round(per_take, 3), f"<= {CPU_TARGET_MS:g}",
                        f"bare aiohttp, same 3 requests: {floor_ms:.2f} ms; "
                        f"{result.cpu:.1f} s CPU in {result.wall:.1f} s wall",
                        per_take <= CPU_TARGET_MS))
        rows.append(row(f"overhead: {n} takes, of which verifying the output (ms per take)",
                        round(verify_ms, 2), "informative",
                        f"the rest: {per_take - verify_ms:.1f} ms", None))
        # Kernel time is mostly creating a take's three inodes (its folder, output and
        # sidecar): on ext4, inode allocation scans for one not recently deleted.
        rows.append(row(f"overhead: {n} takes, of which in the kernel (ms per take)",
                        round(result.system / n * 1000, 2), "informative",
                        f"bare aiohttp: {floor.system / n * 1000:.2f} ms", None))
        rows.append(row(f"overhead: {n} instant takes, runner peak RSS (MB)",
                        round(result.max_rss_mb, 1),
                        f"<= {RSS_TARGET_MB:g} at 20,000" if n == 20_000 else "informative",
                        "python + imports ~60 MB",
                        result.max_rss_mb <= RSS_TARGET_MB if n == 20_000 else None))
    a, b = runs[small], runs[large]
    # Start-up (interpreter, imports, manifest) is paid once per run; what each extra take
    # costs is the difference between the two sizes, for shotrun and for the floor alike.
    marginal = (b.cpu - a.cpu) / (large - small) * 1000
    floor_a, floor_b = measured[small][1], measured[large][1]
    floor_marginal = (floor_b.cpu - floor_a.cpu) / (large - small) * 1000
    rows.append(row(f"overhead: CPU per extra take, {small} -> {large} takes (ms)",
                    round(marginal, 3), f"<= {CPU_TARGET_MS:g}",
                    f"bare aiohttp: {floor_marginal:.2f} ms", marginal <= CPU_TARGET_MS))
    cpu_growth = (b.cpu / large) / (a.cpu / small)
    rss_per_take_kb = (b.max_rss_mb - a.max_rss_mb) * 1024 / (large - small)
    rows.append(row(f"overhead: CPU per take, {large} vs {small} (ratio)", round(cpu_growth, 2),
                    "<= 1.2 (linear)", "1.0", cpu_growth <= 1.2))
    rows.append(row("overhead: RSS growth per extra take (KB)", round(rss_per_take_kb, 2),
                    "informative", "", None))
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
