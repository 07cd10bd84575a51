"""``python -m benchmarks [--quick] [NAME ...]``: run every benchmark and print one table.

Results are figures, not tests: the exit code is 0 unless a benchmark crashed.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.table import format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="a short version (about a minute)")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    args = parser.parse_args(argv)
    import benchmarks

    names = args.names or sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    rows: list[dict[str, Any]] = []
    crashed = False
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            rows.extend(module.run(quick=args.quick))
        except Exception:
            crashed = True
            traceback.print_exc()
            rows.append({"name": name, "value": "crashed", "target": "", "limit": "",
                         "pass": False})
    print(format_table(rows))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
