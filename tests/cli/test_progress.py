"""Live progress: the rich panel in a real pseudo-terminal, the plain lines, NO_COLOR, --quiet."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from rich.console import Console

from runner.cli.progress import (
    LiveDisplay,
    PlainDisplay,
    ProgressDisplay,
    estimate_eta,
    format_duration,
    make_observer,
    render_progress,
    summary_line,
)
from runner.scheduler.snapshot import TakeProgress
from tests.helpers.progress import snapshot
from tests.helpers.terminal import Terminal

# --- ETA -------------------------------------------------------------------------------------

def test_eta_is_unknown_without_a_measure_a_hint_or_an_estimate() -> None:
    assert estimate_eta(snapshot(durations=())) is None
    assert format_duration(None) == "?"


def test_eta_counts_queued_work_and_what_is_left_at_the_gateway() -> None:
    # 1 queued (100 s) + s01 at 30% (70 s left) + s02 at 0% (100 s), over 2 lanes.
    assert estimate_eta(snapshot(done=1, pct=30)) == pytest.approx((100 + 70 + 100) / 2)
    # The median resists one outlier.
    assert estimate_eta(snapshot(durations=(100.0, 100.0, 900.0))) == pytest.approx(135.0)


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (125, "2m 05s"), (3720, "1h 02m")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- the panel, rendered -----------------------------------------------------------------------

def test_panel_shows_counts_credits_eta_and_takes_in_flight() -> None:
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render_progress(snapshot(done=1, pct=30, stopping="budget"), now=1065.0))
    text = console.export_text()
    assert "1/4 done" in text and "0 failed" in text
    assert "2 in flight (limit 2)" in text and "1 queued" in text
    assert "243/500 reserved" in text
    assert "elapsed 1m 05s" in text and "ETA 2m 15s" in text
    assert re.search(r"s01/take-1\s+processing.*30%\s+task-a", text)
    assert re.search(r"s02/take-1\s+pending.*0%\s+task-b", text)
    assert "not submitting more: budget" in text


def test_panel_counts_takes_beyond_the_table() -> None:
    takes = tuple(TakeProgress(f"s{i:02d}/take-1", "processing", 50) for i in range(12))
    console = Console(record=True, width=120)
    console.print(render_progress(snapshot(takes=takes, in_flight=12, queued=0), now=1000.0))
    assert "+ 4 more" in console.export_text()


# --- plain mode -----------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_mode_prints_changes_rate_limited_and_a_heartbeat() -> None:
    out, clock = io.StringIO(), FakeClock()
    with PlainDisplay(out, min_interval=10, heartbeat=60, clock=clock,
                      wall_clock=lambda: 1000.0 + clock.now) as display:
        display(snapshot(done=0, pct=0))  # first snapshot: always shown
        clock.now = 3
        display(snapshot(done=1, pct=10))  # changed, but too soon
        clock.now = 4
        display(snapshot(done=1, pct=40))  # only a percentage moved: not a change
        clock.now = 12
        display(snapshot(done=2, pct=0))  # changed, interval passed: shown
        clock.now = 50
        display(snapshot(done=2, pct=60))  # no change, before the heartbeat
        clock.now = 73
        display(snapshot(done=2, pct=80))  # no change, heartbeat due: shown
        clock.now = 74
        display(snapshot(done=4, pct=100, in_flight=0, queued=0, takes=()))  # too soon...
    lines = out.getvalue().splitlines()  # ...but the last state is always printed on exit
    assert [re.search(r"(\d)/4 done", line).group(1) for line in lines] == ["0", "2", "2", "4"]
    assert lines[0] == ("shotrun: 0/4 done, 0 failed, 2 in flight, 2 queued, 0 downloading, "
                        "credits 162/500, elapsed 0s, ETA 3m 20s")
    assert lines[1].endswith("elapsed 12s, ETA 1m 40s")
    assert "\x1b" not in out.getvalue()


def test_plain_line_mentions_ambiguous_and_why_submitting_stopped() -> None:
    line = summary_line(snapshot(ambiguous=1, held=1, stopping="quota", max_credits=None,
                                 durations=()), now=1000.0)
    assert "1 ambiguous, 1 held" in line and "credits 243," in line
    assert line.endswith("ETA ? (not submitting more: quota)")


def test_make_observer_picks_the_display() -> None:
    out = io.StringIO()
    assert isinstance(make_observer(out, quiet=False), PlainDisplay)  # not a terminal
    quiet = make_observer(out, quiet=True)
    assert type(quiet) is ProgressDisplay
    with quiet as display:
        display(snapshot())
    assert out.getvalue() == ""
    assert isinstance(make_observer(out, quiet=False, interactive=True), LiveDisplay)


def test_live_display_routes_logs_above_the_panel_and_restores_them() -> None:
    import structlog

    from runner.core import log

    console_before = io.StringIO()
    log.configure("warning", stream=console_before)
    logger = structlog.get_logger()
    logger.warning("before_the_panel")  # the logger is cached from here on
    screen = io.StringIO()
    display = LiveDisplay(Console(file=screen, force_terminal=True, width=100))
    with display as observer:
        observer(snapshot())
        logger.warning("while_the_panel_is_up")
    logger.warning("after_the_panel")
    assert "while_the_panel_is_up" in screen.getvalue()  # printed above the panel
    shown = console_before.getvalue()
    assert "before_the_panel" in shown and "after_the_panel" in shown
    assert "while_the_panel_is_up" not in shown


# --- the live panel in a pseudo-terminal -------------------------------------------------------


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
def test_live_panel_shows_and_updates_in_a_terminal(no_color: bool, repo_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(repo_root), COLUMNS="120", LINES="30")
    if no_color:
        env["NO_COLOR"] = "1"
    term = Terminal(env)
    try:
        term.expect(r"1/4 done")
        term.expect(r"s09-pty/take-1.*30%")
        first = len(term.output)
        term.send("next\n")
        term.expect(r"child_warning_event")  # a log line during the panel: printed above it
        term.expect(r"3/4 done")
        term.expect(r"s09-pty/take-1.*90%")
        update = term.output[first:]
        term.send("next\n")
        term.expect("CHILD-END")
    finally:
        assert term.close() == 0
    # The panel is redrawn in place (cursor up, erase line), not appended like a log.
    assert "\x1b[1A" in update or "\x1b[2K" in update
    colours = re.findall(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7]|38;[0-9;]+)m", term.output)
    if no_color:
        assert colours == []
    else:
        assert colours


# --- wired into ``shotrun run`` ------------------------------------------------------------------

RUN_MANIFEST = """\
version: 1
name: progress-run
output_dir: out
api:
  base_url: emulator
  concurrency: 2
  emulator: {queue_time: 0.05, processing_time: 0.3, render: cached}
defaults:
  duration: 3
shots:
  - id: s01
    prompt: a quiet harbour at dawn
    takes: 3
"""


def _run_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "progress.yaml"
    path.write_text(RUN_MANIFEST, encoding="utf-8")
    return path


def test_run_prints_plain_progress_lines_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli import main

    assert main(["run", str(_run_manifest(tmp_path))]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("shotrun: ") and " done, " in line]
    assert lines, "no progress line on stderr"
    assert lines[-1].startswith("shotrun: 3/3 done, 0 failed, 0 in flight, 0 queued")
    assert "\x1b" not in "".join(lines)


def test_run_quiet_prints_no_progress(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli import main

    assert main(["--quiet", "run", str(_run_manifest(tmp_path))]) == 0
    assert " done, " not in capsys.readouterr().err


def test_run_shows_the_live_panel_in_a_terminal(tmp_path: Path, repo_root: Path) -> None:
    manifest = _run_manifest(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(repo_root), COLUMNS="120",
               HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    script = f"import sys; from runner.cli import main; sys.exit(main(['run', {str(manifest)!r}]))"
    term = Terminal(env, script=script)
    try:
        term.expect(r"takes .*/3 done")  # the panel's headline
        term.expect(r"in flight \(limit 2\)")
        term.expect(r"3/3 done")
        term.expect(r"done: 3/3")  # the summary after the panel
    finally:
        assert term.close() == 0
    assert "\x1b[2K" in term.output or "\x1b[1A" in term.output


def test_the_stop_head_is_never_cut_inside_its_parentheses() -> None:
    quota = ("the Kling API says the account is out of credits (1102: the resource pack is "
             "used up); no more takes are submitted, tasks in flight are still collected")
    line = summary_line(snapshot(stopping=quota, max_credits=None, durations=()), now=1000.0)
    assert line.endswith("(not submitting more: the Kling API says the account is out of "
                         "credits)")
