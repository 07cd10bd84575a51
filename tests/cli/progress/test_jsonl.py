"""``shotrun run --progress jsonl``: one JSON object per line on stdout, every line parsed,
from a real run against the built-in emulator; and ``--progress``'s other values."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from runner.emulator import run_emulator
from runner.scheduler.snapshot import TAKE_EVENTS
from tests.helpers.progress_lines import progress_lines, write_manifest
from tests.helpers.run import FAST_FLAGS, KEY, fast_emulator, main_in_thread, wait_for

LIFE = ["take_submitting", "take_submitted", "take_downloading", "take_downloaded",
        "take_verified", "take_done"]


def parse(out: str) -> list[dict[str, Any]]:
    lines = out.splitlines()
    assert lines, "no JSON line on stdout"
    events = [json.loads(line) for line in lines]  # every line, or the test fails here
    assert all(isinstance(event, dict) and {"event", "at", "elapsed"} <= event.keys()
               for event in events)
    return events


def test_every_line_of_a_real_run_is_a_json_event(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(write_manifest(tmp_path, 3)), "--progress", "jsonl"]) == 0
    captured = capsys.readouterr()
    events = parse(captured.out)
    first, last = events[0], events[-1]
    assert first["event"] == "run_started"
    assert (first["total"], first["queued"], first["in_flight"], first["concurrency"]) == \
        (3, 3, 0, 2)
    assert first["eta_seconds"] == 7.5 and first["eta_measured"] is False
    assert last["event"] == "run_finished"
    assert last["summary"]["all_done"] is True and last["summary"]["done"] == 3
    assert last["summary"]["report"].endswith("report.html")
    names = {event["event"] for event in events}
    assert names <= {"run_started", "progress", "run_finished", *TAKE_EVENTS}
    for key in ("s1/take-1", "s2/take-1", "s3/take-1"):
        mine = [event for event in events if event.get("take") == key]
        assert [event["event"] for event in mine if event["event"] in LIFE] == LIFE
        submitted = next(event for event in mine if event["event"] == "take_submitted")
        assert submitted["task_id"] and submitted["credits_reserved"] == 24.3
        done = mine[-1]
        assert done["event"] == "take_done"
        assert done["path"] == str(tmp_path / "out" / key.split("/")[0] / "take-1.mp4")
        verified = next(event for event in mine if event["event"] == "take_verified")
        assert (verified["width"], verified["height"]) == (1280, 720)
    progress = [event for event in events if event["event"] == "progress"]
    assert progress[-1]["done"] == 3 and progress[-1]["in_flight"] == 0
    # The human text is on stderr; stdout is the stream alone.
    assert "done: 3/3" in captured.err and "s1/take-1" in captured.err
    assert progress_lines(captured.err) == []


def test_failures_are_events_with_their_reason_and_the_summary_ends_the_stream(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, 2)
    manifest.write_text(manifest.read_text().replace(
        "render: cached", "render: cached, failure_rate: 1.0, "
        "failure_codes: [content_policy_violation]"))
    assert cli.main(["run", str(manifest), "--progress", "jsonl", "--json"]) == 1
    events = parse(capsys.readouterr().out)
    failed = [event for event in events if event["event"] == "take_failed"]
    assert sorted(event["take"] for event in failed) == ["s1/take-1", "s2/take-1"]
    assert all(event["code"] == "content_policy_violation" and event["kind"] == "permanent"
               and event["message"] for event in failed)
    assert events[-1]["event"] == "run_finished"  # --json's document is this line's summary
    assert [f["key"] for f in events[-1]["summary"]["failed"]] == ["s1/take-1", "s2/take-1"]


def test_quiet_keeps_the_stream_a_script_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--quiet", "run", str(write_manifest(tmp_path, 1)),
                     "--progress", "jsonl"]) == 0
    captured = capsys.readouterr()
    assert parse(captured.out)[-1]["event"] == "run_finished"
    assert captured.err == ""


def test_progress_none_shows_no_progress_and_lines_shows_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, 1)
    assert cli.main(["run", str(manifest), "--progress", "none"]) == 0
    captured = capsys.readouterr()
    assert progress_lines(captured.err) == [] and "done: 1/1" in captured.out
    manifest.write_text(manifest.read_text().replace("plain line shot 1", "another shot"))
    assert cli.main(["run", str(manifest), "--progress", "lines"]) == 0
    assert progress_lines(capsys.readouterr().err)


@pytest.mark.parametrize("value", ["sideways", "JSONL", ""])
def test_a_bad_progress_value_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    manifest = write_manifest(tmp_path, 1)
    assert cli.main(["run", str(manifest), "--progress", value]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"shotrun: error: run: argument --progress: invalid choice: {value!r} (choose from "
        "'auto', 'bar', 'lines', 'jsonl', 'none'); see `shotrun run --help`\n")
    assert captured.out == ""
    assert not (tmp_path / "out").exists()


def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path: Path) -> None:
    # `shotrun run ... --progress jsonl | head -1`: the takes are paid for; the run collects
    # them all and ends as usual, without a word about the closed pipe.
    manifest = write_manifest(tmp_path, 3)
    manifest.write_text(manifest.read_text().replace("processing_time: 0.03",
                                                     "processing_time: 0.3"))
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(manifest),
                             "--progress", "jsonl"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["event"] == "run_started"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "done: 3/3" in err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err
    assert all((tmp_path / "out" / f"s{n}" / "take-1.mp4").is_file() for n in (1, 2, 3))


async def test_an_interrupted_run_tells_what_it_left_and_the_next_one_starts_from_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path, 4)
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    async with run_emulator(fast_emulator(processing_time=0.6)) as emulator:
        args = ["run", str(manifest), "--base-url", emulator.base_url, *FAST_FLAGS,
                "--progress", "jsonl"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runner", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert await wait_for(lambda: emulator.stats()["accepted_tasks"] >= 2, proc)
        proc.send_signal(signal.SIGINT)
        out, err = await proc.communicate()
        assert proc.returncode == 130, err
        stopped = parse(out.decode())
        monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
        assert await main_in_thread(args) == 0
    left = sorted(event["take"] for event in stopped if event["event"] == "take_left")
    never = sorted(event["take"] for event in stopped if event["event"] == "take_not_started")
    assert left == ["s1/take-1", "s2/take-1"] and never == ["s3/take-1", "s4/take-1"]
    assert stopped[-1]["event"] == "run_finished"
    assert stopped[-1]["summary"]["stopped_reason"] == "interrupted"
    assert sorted(stopped[-1]["summary"]["in_flight"]) == left
    resumed = parse(capsys.readouterr().out)
    assert (resumed[0]["event"], resumed[0]["in_flight"], resumed[0]["queued"]) == \
        ("run_started", 2, 2)
    submitted = sorted(event["take"] for event in resumed if event["event"] == "take_submitted")
    assert submitted == never  # the two left at the gateway are collected, not sent again
    done = sorted(event["take"] for event in resumed if event["event"] == "take_done")
    assert done == ["s1/take-1", "s2/take-1", "s3/take-1", "s4/take-1"]
