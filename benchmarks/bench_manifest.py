"""Benchmark: validate + plan of generated manifests of 1,000 / 10,000 / 100,000 shots.

    python benchmarks/bench_manifest.py [--quick]

Target (issue 2): 10,000 shots in under 2 s on a 2-core machine, memory growing linearly.
"Validate + plan" is what ``shotrun plan --json`` does without printing: load, both passes,
expansion into takes with fingerprints, payload previews, credit estimates and totals. The
generated shots use a named local image, a named element, a URL, vars, ``@name`` rewriting,
and every tenth shot a 2-value matrix; peak memory is measured in a separate run under
tracemalloc (which slows Python down, so it is not timed).

The pass/fail time is CPU time (``time.process_time``, the whole work is single-threaded), so
that other processes on a busy machine do not decide the verdict; wall time is reported too.

``run(quick)`` returns rows ``{name, value, target, limit, pass}`` (``benchmarks.table.row``)
for ``python -m benchmarks``; ``pass`` is None for figures that are only informative.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import structlog
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.table import format_table, row
from runner.cli.commands.plan import plan_document
from runner.manifest import load_manifest

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
TIME_TARGETS = {1_000: (0.2, 0.5), 10_000: (2.0, 2.0), 100_000: (20.0, 40.0)}


def generate(folder: Path, shots: int) -> Path:
    """Write a manifest of ``shots`` shots (plus its images) into ``folder``."""
    Image.new("RGB", (400, 400), (10, 120, 200)).save(folder / "hero.png")
    Image.new("RGB", (640, 360), (200, 120, 10)).save(folder / "coast.jpg")
    lines = [
        "version: 1", f"name: bench-{shots}",
        "budget: {max_credits: 100000000, rates: {720p: 8.1, 1080p: 10.8, audio: 1}}",
        "vars: {place: Big Sur}",
        "assets: {coast: coast.jpg, cliff: 'https://cdn.example/cliff.jpg'}",
        "elements:", "  hero: {frontal: hero.png, references: [coast.jpg]}",
        "defaults: {resolution: 720p, duration: 5, aspect_ratio: '16:9'}",
        "shots:",
    ]
    written = 0
    index = 0
    while written < shots:
        index += 1
        lines += [
            f"  - id: s{index:06d}",
            f'    prompt: "Shot {index}: @hero walks along @coast at ${{place}}, @cliff behind"',
            "    images: [coast, cliff]",
            "    elements: [hero]",
            f"    tags: [act{index % 3 + 1}]",
        ]
        if index % 10 == 0 and written + 2 <= shots:
            lines.append("    matrix: {resolution: [720p, 1080p]}")
            written += 2
        else:
            written += 1
        if index % 7 == 0:
            lines.append("    generate_audio: true")
    path = folder / f"bench-{shots}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def validate_and_plan(path: Path) -> int:
    """Load, check, expand and plan; the number of takes."""
    manifest = load_manifest(path)
    document = plan_document(manifest)
    return int(document["totals"]["takes"])


def measure(path: Path) -> tuple[float, float, int]:
    """Best of a few runs: CPU seconds, wall seconds, and the takes planned."""
    runs = 3 if path.stat().st_size < 5_000_000 else 1
    best_cpu = best_wall = float("inf")
    takes = 0
    for _ in range(runs):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        takes = validate_and_plan(path)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall, takes


def peak_memory(path: Path) -> int:
    """Peak bytes allocated by Python during one validate + plan."""
    gc.collect()
    tracemalloc.start()
    try:
        validate_and_plan(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows {name, value, target, limit, pass} for each size, plus memory linearity."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rows: list[dict[str, Any]] = []
    per_shot: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="shotrun-bench-") as tmp:
        for shots in QUICK_SIZES if quick else SIZES:
            folder = Path(tmp) / str(shots)
            folder.mkdir()
            path = generate(folder, shots)
            cpu, wall, takes = measure(path)
            assert takes == shots, (takes, shots)
            target, limit = TIME_TARGETS[shots]
            rows.append(row(f"manifest validate+plan {shots} shots (CPU s)", round(cpu, 3),
                            f"< {target:g} s", f"{limit:g}", cpu <= limit))
            rows.append(row(f"manifest validate+plan {shots} shots (wall s)", round(wall, 3),
                            f"< {target:g} s"))
            peak = peak_memory(path)
            per_shot[shots] = peak / shots
            rows.append(row(f"manifest peak memory {shots} shots (MB)", round(peak / 1e6, 1),
                            "linear"))
    smallest, largest = min(per_shot), max(per_shot)
    growth = per_shot[largest] / per_shot[smallest]
    rows.append(row(f"manifest memory per shot, {largest} vs {smallest} (ratio)",
                    round(growth, 3), "1.0", "1.5", growth <= 1.5))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 shots only")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(format_table(rows))
    return 0 if all(r["pass"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
