"""How much CPU the emulator spends rendering a clip (target: 5 s of 720p in under 2 s).

Run alone with ``python benchmarks/bench_render.py [--quick]``, or with every benchmark via
``python -m benchmarks``. CPU time is the process's user + system time (libx264's own
threads included), the median of a few runs after a warm-up render.
"""

from __future__ import annotations

import io
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from benchmarks.table import format_table, row
from runner.core.model import frame_size
from runner.emulator.video import RenderSpec, Shot, render

TARGET_720P = 2.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _picture(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1024, 768), colour).save(out, format="JPEG")
    return out.getvalue()


def _spec(resolution: str, audio: bool, pictures: bool, segments: int = 1) -> RenderSpec:
    width, height = frame_size(resolution, "16:9")
    prompt = ("A lighthouse keeper climbs the spiral stairs at dusk while @Image1 waits below; "
              "waves break on the rocks, slow dolly in, warm light")
    seconds = [5 // segments] * segments
    seconds[-1] += 5 - sum(seconds)
    shots = tuple(
        Shot(f"{prompt} (part {n + 1})", s, _picture((40 * n, 90, 160)) if pictures else None)
        for n, s in enumerate(seconds)
    )
    return RenderSpec(width, height, shots, audio,
                      _picture((200, 120, 40)) if pictures else None, "bench")


def _measure(spec: RenderSpec, runs: int) -> tuple[float, int]:
    size = len(render(spec))  # warm-up: fonts, codec set-up
    times = []
    for _ in range(runs):
        before = _cpu()
        render(spec)
        times.append(_cpu() - before)
    return statistics.median(times), size


def run(quick: bool) -> list[dict[str, Any]]:
    """Benchmark rows: CPU seconds per 5-second clip, by resolution and content."""
    runs = 1 if quick else 3
    rows = []
    cases = [
        ("render 5s 720p, text only (CPU s)", _spec("720p", False, False), TARGET_720P),
        ("render 5s 720p, pictures + audio (CPU s)", _spec("720p", True, True), TARGET_720P),
        ("render 5s 720p, 3 segments (CPU s)", _spec("720p", False, True, 3), TARGET_720P),
    ]
    if not quick:
        cases.append(("render 5s 1080p, pictures + audio (CPU s)", _spec("1080p", True, True),
                      None))
    for name, spec, target in cases:
        seconds, size = _measure(spec, runs)
        if target is None:
            rows.append(row(name, round(seconds, 3), "informative", f"clip {size // 1024} KiB"))
        else:
            rows.append(row(name, round(seconds, 3), f"< {target:g} s",
                            f"clip {size // 1024} KiB", seconds < target))
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
