"""The command line's contract: help, version, usage errors, exit codes, crash logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from runner.core.errors import EXIT_CRASH, EXIT_USAGE
from runner.core.redact import register_secret


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == EXIT_USAGE
    assert "usage: shotrun" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid choice" in err
    assert "Traceback" not in err


def test_unexpected_error_writes_redacted_crash_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    register_secret("sk-very-secret-key-123")
    with_result: list[int] = []
    with cli.exit_codes(with_result):
        raise RuntimeError("boom sk-very-secret-key-123")
    assert with_result == [EXIT_CRASH]
    err = capsys.readouterr().err
    assert "sk-very-secret-key-123" not in err
    assert "crash-" in err
    log_path = Path(err.split("the traceback is in ")[1].splitlines()[0].strip())
    text = log_path.read_text()
    assert "RuntimeError" in text
    assert "sk-very-secret-key-123" not in text
    assert log_path.stat().st_mode & 0o777 == 0o600


def test_version_loads_no_command_module() -> None:
    """``--version`` answers without importing any command (PyAV, aiohttp... are not needed)."""
    import subprocess
    import sys

    code = ("import sys\nfrom runner import cli\ntry:\n    cli.main(['--version'])\n"
            "except SystemExit as exc:\n    assert exc.code in (0, None)\n"
            "print(sorted(m for m in sys.modules if m.startswith('runner.cli.commands.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines() == ["shotrun 0.1.0", "[]"]


def test_status_of_a_valid_manifest_imports_no_heavy_module(tmp_path: Path) -> None:
    """A valid manifest's status (plain lines above 500 takes) needs none of the heavy modules."""
    import subprocess
    import sys

    lines = ["version: 1\nname: many\noutput_dir: out\nshots:\n"]
    lines += [f"  - {{id: s{n:04d}, prompt: shot {n}}}\n" for n in range(501)]
    manifest = tmp_path / "shots.yaml"
    manifest.write_text("".join(lines), encoding="utf-8")
    code = ("import sys\nfrom runner import cli\ncode = cli.main(['status', sys.argv[1]])\n"
            "heavy = [m for m in ('jsonschema', 'PIL.Image', 'aiohttp', 'av', 'numpy',\n"
            "                     'rich', 'attr') if m in sys.modules]\n"
            "print('heavy:', heavy, 'code:', code, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(manifest)], capture_output=True,
                          text=True, check=True)
    assert "heavy: [] code: 0" in done.stderr
    assert "s0500/take-1" in done.stdout


# A program (or a test) that starts the emulator and then runs a command in the same process:
# the emulator logs (debug) before cli.main has parsed a word.
IN_PROCESS = """\
import asyncio, sys
from runner.emulator.server import run_emulator
from runner.emulator.settings import EmulatorSettings
from runner import cli

async def main() -> int:
    settings = EmulatorSettings(queue_time=0.01, processing_time=0.03, render="cached")
    async with run_emulator(settings) as emulator:
        return await asyncio.to_thread(cli.main, [
            "run", sys.argv[1], "--base-url", emulator.base_url, "--json", "--poll-min",
            "0.01", "--poll-max", "0.05", "--submit-rate", "0"])

sys.exit(asyncio.run(main()))
"""


def test_a_command_run_in_process_after_the_emulator_logged_prints_only_its_output(
        tmp_path: Path) -> None:
    """Nothing but the command's output on stdout: ``run --json``'s is one JSON document.

    A fresh interpreter, because in this one logging was configured long ago; structlog not
    yet configured printed the emulator's ``[debug] emulator_listening`` line in front of it.
    """
    import json
    import os
    import subprocess
    import sys

    manifest = tmp_path / "shots.yaml"
    manifest.write_text(
        "version: 1\nname: quiet\noutput_dir: out\napi: {base_url: emulator}\n"
        "shots:\n  - {id: s01, prompt: a lighthouse at dawn, duration: 3}\n",
        encoding="utf-8")
    env = {**os.environ, "SHOTRUN_API_KEY": "sk-in-process-0123456789"}
    done = subprocess.run([sys.executable, "-c", IN_PROCESS, str(manifest)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "emulator_listening" not in done.stdout
    summary = json.loads(done.stdout)  # a stray line in front of it: not JSON
    assert summary["done"] == 1 and summary["all_done"] is True
