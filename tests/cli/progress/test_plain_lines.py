"""Off a terminal: each plain line's counts are right after a resume, and a run with nothing
to do prints one line. Through ``shotrun run`` against the emulator, exact text."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from runner import cli
from runner.emulator import run_emulator
from tests.helpers.progress_lines import progress_lines, write_manifest
from tests.helpers.run import FAST_FLAGS, KEY, fast_emulator, main_in_thread, wait_for


def test_a_run_with_nothing_to_do_prints_one_line_without_an_eta(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, 3)
    assert cli.main(["run", str(manifest)]) == 0
    capsys.readouterr()
    assert cli.main(["run", str(manifest)]) == 0
    assert progress_lines(capsys.readouterr().err) == [
        "shotrun: 3/3 done, 0 failed, 0 in flight, 0 queued, 0 downloading, credits 72.9, "
        "elapsed 0s"]


def test_plain_lines_give_an_eta_from_the_first_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The built-in emulator's poll policy takes a task for 5 s before any is measured:
    # 3 takes over 2 lanes.
    assert cli.main(["run", str(write_manifest(tmp_path, 3)), "--progress", "lines"]) == 0
    lines = progress_lines(capsys.readouterr().err)
    assert lines[0] == ("shotrun: 0/3 done, 0 failed, 0 in flight, 3 queued, 0 downloading, "
                        "credits 0, elapsed 0s, ETA ~8s")
    assert lines[-1].startswith("shotrun: 3/3 done, 0 failed, 0 in flight, 0 queued")


async def test_after_a_resume_the_first_line_counts_the_takes_still_in_flight(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path, 4)
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    async with run_emulator(fast_emulator(processing_time=0.6)) as emulator:
        args = ["run", str(manifest), "--base-url", emulator.base_url, *FAST_FLAGS]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runner", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert await wait_for(lambda: emulator.stats()["accepted_tasks"] >= 2, proc)
        proc.send_signal(signal.SIGINT)  # 2 tasks keep rendering at the gateway
        out, err = await proc.communicate()
        assert proc.returncode == 130, err
        assert b"still at the gateway: 2" in out
        monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
        assert await main_in_thread(args) == 0
    lines = progress_lines(capsys.readouterr().err)
    assert re.fullmatch(
        r"shotrun: 0/4 done, 0 failed, 2 in flight, 2 queued, 0 downloading, credits 48\.6, "
        r"elapsed 0s, ETA ~\ds", lines[0]), lines[0]  # the emulator's hints: 1 s a task
    assert lines[-1].startswith("shotrun: 4/4 done, 0 failed, 0 in flight, 0 queued")


def test_a_team_s_runner_says_how_many_takes_other_runners_hold() -> None:
    """Takes another runner holds are not "queued" here: they are said apart, and the ETA
    does not wait for them."""
    from runner.cli.progress import estimate_eta, progress_counts, summary_line
    from tests.helpers.progress import snapshot

    alone = snapshot(done=0, queued=0)
    team = snapshot(done=0, queued=0, elsewhere=7, total=11)
    line = summary_line(team, 1010.0)
    assert "7 with other runners" in line and "0 queued" in line
    assert "with other runners" not in summary_line(alone, 1010.0)
    assert estimate_eta(team, 1010.0) == estimate_eta(alone, 1010.0)
    assert progress_counts(team, 1010.0)["with_other_runners"] == 7
