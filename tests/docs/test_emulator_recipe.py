"""``shotrun emulator`` prints the lines that render against it, and they work as printed."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner import cli
from runner.cli.emulator_recipe import how_to_use, notes_for
from runner.core.errors import EXIT_INTERRUPTED, EXIT_OK


def test_the_printed_lines_render_against_the_emulator(
        repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init", "film"]) == EXIT_OK
    env = {key: value for key, value in os.environ.items() if key != "SHOTRUN_API_KEY"}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "emulator", "--queue-time", "0.05",
         "--processing-time", "0.3"],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().strip()  # blocks until it listens
        printed = []
        while not printed or not printed[-1].startswith("shotrun run"):
            printed.append(process.stderr.readline().strip())
        lines = [line for line in printed if line.startswith(("export ", "shotrun run "))]
        assert lines == ["export SHOTRUN_API_KEY=emulator-accepts-any-key",
                         f"shotrun run MANIFEST --base-url {url}"]
        monkeypatch.delenv("SHOTRUN_API_KEY", raising=False)
        for line in lines[:-1]:
            name, _, value = line.removeprefix("export ").partition("=")
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path / "film")
        argv = shlex.split(lines[-1].replace("MANIFEST", "shots.yaml"))[1:]
        assert cli.main(argv) == EXIT_OK
        assert len(list((tmp_path / "film").rglob("take-*.mp4"))) == 3
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == EXIT_INTERRUPTED


def test_without_the_printed_key_the_run_says_no_api_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Why the export line is printed first: a run against a URL needs a key."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init", "film"]) == EXIT_OK
    monkeypatch.delenv("SHOTRUN_API_KEY", raising=False)
    assert cli.main(["run", "film/shots.yaml", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "no API key: set the environment variable SHOTRUN_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize(("provider", "key_env", "expected"), [
    pytest.param("fal", None, ["export FAL_KEY=emulator-accepts-any-key",
                               "shotrun run MANIFEST --base-url http://h:1 --provider fal"],
                 id="fal"),
    pytest.param("kling", "MY_SECRET", ['export KLING_SECRET_KEY="$MY_SECRET"',
                                        "export KLING_ACCESS_KEY=any-access-key",
                                        "shotrun run MANIFEST --base-url http://h:1 "
                                        "--provider kling"], id="kling-checked-key"),
])
def test_lines_for_each_provider(provider: str, key_env: str | None,
                                 expected: list[str]) -> None:
    assert how_to_use("http://h:1", provider, key_env) == expected


def test_the_notes_say_what_the_lines_cannot() -> None:
    assert notes_for("gateway") == [
        "a manifest naming another api.api_key_env reads that variable instead"]
    assert notes_for("fal")[1] == (
        "fal.ai documents no upload service: against a URL a manifest's images must be "
        "http(s) URLs; --base-url emulator --provider fal renders local ones in-process")
