"""``python -m benchmarks [--quick] [NAME ...]``: run every benchmark and print one table.

Results are figures, not tests: the exit code is 0 unless a benchmark crashed (1), or 2 for
a name that is not a benchmark (`--help` lists them; `startup` and `bench_startup` both work).
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

PREFIX = "bench_"


def available() -> list[str]:
    """The benchmarks' short names (``startup`` for ``benchmarks/bench_startup.py``)."""
    import benchmarks

    return sorted(m.name.removeprefix(PREFIX) for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name.startswith(PREFIX))


def resolve(names: list[str], known: list[str] | None = None) -> list[str]:
    """Module names for ``names`` given short (``startup``) or whole (``bench_startup``),
    out of ``known`` (default :func:`available`); ValueError naming the first unknown one."""
    known = available() if known is None else known
    modules: list[str] = []
    for name in names:
        short = name.removeprefix(PREFIX)
        if short not in known:
            raise ValueError(f"no benchmark {name!r}; choose from: {', '.join(known)}")
        modules.append(PREFIX + short)
    return modules


def main(argv: list[str] | None = None) -> int:
    benches = available()  # the package's folder is listed once
    known = ", ".join(benches)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=f"Run benchmarks against the built-in emulator and print one table of "
        f"figures. Benchmarks: {known}. One of them: python -m benchmarks --quick startup "
        f"(the start-up time of shotrun --help and validate).")
    parser.add_argument("--quick", action="store_true", help="a short version (about a minute)")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to run, by name (default: all)")
    args = parser.parse_args(argv)
    try:
        names = resolve(args.names, benches) if args.names else [PREFIX + n for n in benches]
    except ValueError as exc:
        parser.error(str(exc))
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
