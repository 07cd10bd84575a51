"""Start-up stays light: building the whole parser (``shotrun --help``, completion) and
loading the ``validate``/``status`` commands import none of the heavy libraries.

Time is measured by ``benchmarks/bench_startup.py``, never here; this checks the cause: what
is imported. Each check runs in a fresh interpreter (this one has loaded everything).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runner.cli.commands.export import FORMAT_NAMES

HEAVY = ("aiohttp", "av", "numpy", "PIL", "rich", "opentimelineio", "jsonschema", "yaml",
         "runner.emulator.server", "runner.scheduler.engine", "psycopg")


def _imported_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print(__import__('json').dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_whole_parser_imports_no_heavy_library() -> None:
    assert _imported_after("from runner.cli import build_parser; build_parser()") == []


@pytest.mark.parametrize("command", ["validate", "status", "completion"])
def test_a_light_command_loads_without_heavy_libraries(command: str) -> None:
    assert _imported_after(f"import runner.cli.commands.{command}") == []


def test_a_run_on_the_embedded_store_never_loads_the_database_driver() -> None:
    """psycopg (55 ms and 10 MB) is for a team's store only: imported where one is opened."""
    code = ("import runner.cli.commands.run, runner.scheduler.engine, runner.views.report,"
            " runner.views.status, runner.state.location")
    assert "psycopg" not in _imported_after(code)


def test_export_help_names_every_format_it_knows() -> None:
    from runner.views.export import FORMATS

    assert ",".join(fmt.name for fmt in FORMATS) == FORMAT_NAMES
