"""Fixes from a fresh-eyes review of the command line, each through ``cli.main``.

An output folder that is a file, ``-q``, where flags may go, the Ctrl-C lines, wording, the
chosen take in ``status``, stale clips left in an export folder.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from rich.console import Console

from runner import cli
from runner.cli.progress import render_progress, summary_line
from runner.emulator import run_emulator
from runner.scheduler.snapshot import RunProgress
from tests.helpers.run import (
    FAST_FLAGS,
    KEY,
    THREE,
    fast_emulator,
    wait_for,
    write_manifest,
)


@pytest.mark.parametrize("command", [["run"], ["report"], ["status"], ["export", "DIR"],
                                     ["pick", "s01", "1"], ["plan"]])
def test_an_output_dir_that_is_a_file_is_one_located_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    (tmp_path / "out").write_text("hi\n", encoding="utf-8")
    argv = [command[0], str(manifest),
            *[str(tmp_path / "exported") if word == "DIR" else word for word in command[1:]]]
    if command[0] == "run":
        argv += FAST_FLAGS
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [f"{manifest}:3:13: output_dir: 'out' is a file, not a folder; move or "
                     "rename that file, or set output_dir to a folder"]
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "shots.yaml"]
    assert (tmp_path / "out").read_text(encoding="utf-8") == "hi\n"


def test_an_output_dir_below_a_file_names_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    text = manifest.read_text(encoding="utf-8").replace("output_dir: out", "output_dir: f/out")
    manifest.write_text(text, encoding="utf-8")
    (tmp_path / "f").write_text("hi\n", encoding="utf-8")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "output_dir: 'f/out' cannot be a folder: 'f' is a file" in err
    assert err.count("\n") == 1


def test_quiet_run_prints_nothing_when_all_is_done_and_json_still_prints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["-q", "run", str(manifest), *FAST_FLAGS]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "out" / "s02" / "take-1.mp4").is_file()
    assert cli.main(["-q", "run", str(manifest), "--json", *FAST_FLAGS]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["all_done"] is True and captured.err == ""


def test_quiet_run_that_fails_says_what_went_wrong_on_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE, api="  concurrency: 1\n")
    assert cli.main(["-q", "run", str(manifest), "--max-credits", "30", *FAST_FLAGS]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "budget reached" in captured.err and "not submitted: 2" in captured.err
    assert "submit" not in captured.err.split("done:")[0]  # no plan lines


def test_quiet_report_export_pick_and_validate_print_nothing_on_success(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["-q", "validate", str(manifest)]) == 0
    assert cli.main(["-q", "report", str(manifest)]) == 0  # before any run: a note, quieted
    assert capsys.readouterr() == ("", "")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    capsys.readouterr()
    assert cli.main(["-q", "report", str(manifest), "--csv-file", str(tmp_path / "t.csv")]) == 0
    assert cli.main(["-q", "export", str(manifest), str(tmp_path / "edit")]) == 0
    assert cli.main(["-q", "pick", str(manifest), "s01", "2"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "t.csv").is_file() and (tmp_path / "edit" / "edit.csv").is_file()
    # status's table is what was asked for: -q does not hide it.
    assert cli.main(["-q", "status", str(manifest)]) == 0
    assert "s01/take-2" in capsys.readouterr().out


def test_csv_before_the_manifest_does_not_swallow_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["report", "--csv", str(manifest)]) == 0
    assert (tmp_path / "out" / "trace.csv").is_file()
    assert f"trace: {tmp_path / 'out' / 'trace.csv'}" in capsys.readouterr().out
    assert cli.main(["report", "--csv", "--csv-file", "x.csv", str(manifest)]) == 2
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["validate", "M", "-v"], ["validate", "-q", "M"],
                                  ["-q", "validate", "M"], ["validate", "M", "-vv"]])
def test_global_flags_work_after_the_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    words = [str(manifest) if word == "M" else word for word in argv]
    assert cli.main(words) == 0
    out = capsys.readouterr().out
    assert ("valid" in out) == ("-q" not in argv)
    args = cli.build_parser().parse_args(words)
    assert args.quiet == ("-q" in argv)
    assert args.verbose == (2 if "-vv" in argv else 1 if "-v" in argv else 0)


def test_a_flag_before_the_command_is_kept_when_the_command_has_none(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["-vv", "run", "x.yaml"])
    assert args.verbose == 2 and args.quiet is False


def test_a_usage_error_has_one_prefix_and_names_the_help(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "x.yaml", "--retries", "x"]) == 2
    assert capsys.readouterr().err == (
        "shotrun: error: run: argument --retries: not a whole number: 'x'; see "
        "`shotrun run --help`\n")
    assert cli.main(["nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shotrun: error: argument COMMAND: invalid choice: 'nope'")
    assert err.count("shotrun") == 2  # the prefix and `shotrun --help`


def _stopped(**changes: int) -> RunProgress:
    fields = {"total": 6, "done": 0, "failed": 0, "in_flight": 0, "queued": 0,
              "downloading": 0, "submitting": 0, "ambiguous": 0, "held": 0}
    fields.update(changes)
    return RunProgress(**fields, credits_reserved=48.6, max_credits=None, started_at=0.0,
                       concurrency_limit=2, stopping="interrupted: tasks in flight keep "
                       "rendering at the gateway; run again to collect them")


def test_a_settled_stopped_run_shows_what_is_left_not_zero_in_flight() -> None:
    line = summary_line(_stopped(done=1), now=3.0)
    assert line == ("shotrun: 1/6 done, 0 failed, 5 left for the next run, credits 48.6, "
                    "elapsed 3s (not submitting more: interrupted)")
    # While tasks are still at the gateway, they are counted as in flight.
    assert "2 in flight" in summary_line(_stopped(in_flight=2), now=3.0)
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render_progress(_stopped(done=1), now=3.0))
    panel = console.file.getvalue()  # type: ignore[attr-defined]
    assert "5 left for the next run" in panel and "in flight" not in panel
    assert "keep rendering" not in panel


async def test_one_ctrl_c_says_it_once_and_the_last_line_agrees_with_the_summary(
        tmp_path: Path) -> None:
    shots = "".join(f"  - id: s{n}\n    prompt: \"review sigint {n}\"\n" for n in range(6))
    manifest = write_manifest(tmp_path, shots, api="  concurrency: 2\n")
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    async with run_emulator(fast_emulator(processing_time=0.6)) as emulator:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runner", "run", str(manifest), "--base-url",
            emulator.base_url, *FAST_FLAGS, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert await wait_for(lambda: emulator.stats()["accepted_tasks"] >= 2, proc)
        proc.send_signal(signal.SIGINT)
        out_bytes, err_bytes = await proc.communicate()
    out, err = out_bytes.decode(), err_bytes.decode()
    assert proc.returncode == 130, err
    assert "still at the gateway: 2" in out and "stopped: interrupted\n" in out
    assert "keep rendering" not in out
    shown = [line for line in err.splitlines() if line.startswith("shotrun:")]
    assert sum("keep rendering" in line for line in shown) == 1  # the notice at Ctrl-C
    assert "submissions_stopped" not in err  # no console log line repeats the reason
    done = int(out.split("done: ", 1)[1].split("/", 1)[0])
    assert "in flight" not in shown[-1] and f"{6 - done} left for the next run" in shown[-1]


ONE = "  - id: s01\n    prompt: \"a single shot\"\n"


def test_one_take_is_singular_in_run_status_report_and_export(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, ONE)
    assert cli.main(["status", str(manifest)]) == 0
    assert "1 take: 1 new" in capsys.readouterr().out
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "demo: 1 take via" in capsys.readouterr().out
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "  1 take already done" in capsys.readouterr().out
    assert cli.main(["report", str(manifest)]) == 0
    assert "report of 1 take: 1 done" in capsys.readouterr().out
    assert cli.main(["export", str(manifest), str(tmp_path / "cut")]) == 0
    assert "1 clip and edit.csv" in capsys.readouterr().out
    assert cli.main(["pick", str(manifest), "s01", "2"]) == 2
    assert "shot s01 has only take 1, not 2" in capsys.readouterr().err


def test_export_warnings_and_errors_carry_the_shotrun_prefix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), "--only", "s02", *FAST_FLAGS]) == 0
    capsys.readouterr()
    assert cli.main(["export", str(manifest), str(tmp_path / "cut")]) == 0
    assert capsys.readouterr().err.startswith(
        "shotrun: warning: no finished take for: s01; skipped")
    assert cli.main(["export", str(manifest), str(tmp_path / "cut2"), "--strict"]) == 1
    assert capsys.readouterr().err.startswith("shotrun: error: no finished take for: s01;")


def test_status_of_an_invalid_manifest_that_never_ran_is_exit_2_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, "  - id: s01\n    prompt: x\n    duration: 99\n")
    assert cli.main(["status", str(manifest)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "does not load any more" not in captured.err
    assert "duration" in captured.err
    assert captured.err.strip().splitlines()[-1] == (
        f"{manifest}: does not load and has never run, so there is no status to show; fix the "
        "problems above (shotrun validate FILE)")
    assert not (tmp_path / "out").exists()


def _status_cells(capsys: pytest.CaptureFixture[str], manifest: Path) -> dict[str, str]:
    assert cli.main(["status", str(manifest)]) == 0
    cells: dict[str, str] = {}
    for line in capsys.readouterr().out.splitlines():
        parts = [part.strip() for part in line.split("│")]
        if len(parts) > 2 and "/take-" in parts[0]:
            cells[parts[0]] = parts[1]
    return cells


def test_status_marks_the_chosen_take_before_and_after_a_pick(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    capsys.readouterr()
    assert cli.main(["status", str(manifest), "--json"]) == 0
    chosen = {t["id"] for t in json.loads(capsys.readouterr().out)["takes"] if t["chosen"]}
    assert len(chosen) == 2 and "s02/take-1" in chosen
    first = next(key for key in chosen if key.startswith("s01/"))
    other = "s01/take-2" if first == "s01/take-1" else "s01/take-1"
    cells = _status_cells(capsys, manifest)
    assert cells == {first: "done, chosen", other: "done", "s02/take-1": "done, chosen"}
    assert cli.main(["pick", str(manifest), "s01", other[-1]]) == 0
    capsys.readouterr()
    cells = _status_cells(capsys, manifest)
    assert cells == {first: "done", other: "done, picked", "s02/take-1": "done, chosen"}


def test_export_into_a_used_folder_warns_about_files_it_does_not_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "01-s01-arrival.mp4").write_bytes(b"old clip")
    (cut / "notes.txt").write_text("mine\n", encoding="utf-8")
    (cut / ".DS_Store").write_bytes(b"")
    capsys.readouterr()
    assert cli.main(["-q", "export", str(manifest), str(cut)]) == 0
    assert capsys.readouterr().err == (
        f"shotrun: warning: {cut} also holds 2 files that are not part of this export "
        "(01-s01-arrival.mp4, notes.txt); edit.csv, edit.edl, edit.otio and edit.xml list only "
        "the clips written now: remove them, or export into an empty folder\n")
    assert (cut / "01-s01-arrival.mp4").read_bytes() == b"old clip"  # never deleted
    assert (cut / "01-s01.mp4").is_file() and (cut / "02-s02.mp4").is_file()
    # Exporting again into the same folder: only the stranger files are counted.
    assert cli.main(["export", str(manifest), str(cut)]) == 0
    assert "also holds 2 files" in capsys.readouterr().err
    (cut / "notes.txt").unlink()
    assert cli.main(["export", str(manifest), str(cut)]) == 0
    assert "also holds 1 file that is not part" in capsys.readouterr().err
    (cut / "01-s01-arrival.mp4").unlink()
    assert cli.main(["export", str(manifest), str(cut)]) == 0
    assert capsys.readouterr().err == ""


def test_export_into_a_file_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    (tmp_path / "cut").write_text("x", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["export", str(manifest), str(tmp_path / "cut")]) == 2
    assert capsys.readouterr().err == (
        f"shotrun: error: {tmp_path / 'cut'} is a file, not a folder; choose a folder to "
        "export into\n")
