"""Benchmark: start-up of ``shotrun --help`` and ``shotrun validate manifests/demo.yaml``.

    python benchmarks/bench_startup.py [--quick]

Target (issue 22): ``shotrun --help`` in under 0.2 s. Completion scripts (``shotrun
completion``) are static, so Tab starts nothing; ``--help``, ``validate`` and ``status``
should still start at once. Each command is run as a real process (the installed console
script's interpreter, ``python -m runner``) several times; the figure is the fastest run's
CPU time (user + system of the child: other processes on a busy 2-core machine do not
inflate it), with the fastest wall time and the peak memory beside it.

Before (the commit before the lazy imports, same machine, runs interleaved with the new code
so that both saw the same load): ``--help`` 0.43 s wall on a quiet machine, 0.51 s CPU,
82-86 MB (0.62 s in the issue, on its machine); ``validate`` of the demo 0.11 s wall, 0.13 s
CPU, 31 MB (it already imported only its own command).

``run(quick)`` returns rows ``{name, value, target, limit, pass}`` (``benchmarks.table.row``)
for ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "manifests" / "demo.yaml"
TARGET = 0.2  # seconds, for `shotrun --help`
BEFORE = {  # wall seconds, CPU seconds, MB, measured before the change (see the docstring)
    "--help": (0.43, 0.51, 82),
    "validate": (0.11, 0.13, 31),
}


def _once(argv: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of one run of ``python -m runner ARGV``.

    Measured by the run benchmarks' small launcher (:func:`benchmarks._emu._child`): a child
    spawned straight from this process, grown by the benchmarks before it, would report this
    process's peak memory (324 MB seen), not shotrun's.
    """
    done = _emu._child([sys.executable, "-m", "runner", *argv], dict(os.environ))
    if done.code != 0:
        raise RuntimeError(f"shotrun {' '.join(argv)} failed (exit {done.code})")
    return done.wall, done.cpu, done.max_rss_mb


def measure(argv: list[str], times: int) -> tuple[float, float, float]:
    """The fastest wall time, the fastest CPU time and the largest peak over ``times`` runs."""
    runs = [_once(argv) for _ in range(times)]
    return (min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs))


def run(quick: bool = False) -> list[dict[str, Any]]:
    times = 3 if quick else 7
    rows: list[dict[str, Any]] = []
    subprocess.run([sys.executable, "-m", "runner", "--version"], check=True,
                   capture_output=True)  # warm the file cache: the first start reads .pyc
    for name, argv in (("--help", ["--help"]), ("validate", ["validate", str(DEMO)])):
        wall, cpu, peak = measure(argv, times)
        old_wall, old_cpu, old_mb = BEFORE[name]
        target = f"< {TARGET} s" if name == "--help" else "informative"
        rows.append(row(f"startup: shotrun {name}, CPU (s)", round(cpu, 3), target,
                        f"before {old_cpu} s", cpu < TARGET if name == "--help" else None))
        rows.append(row(f"startup: shotrun {name}, wall (s)", round(wall, 3), "informative",
                        f"before {old_wall} s"))
        rows.append(row(f"startup: shotrun {name}, peak memory (MB)", round(peak, 1),
                        "informative", f"before {old_mb} MB"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table(run(quick=args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
