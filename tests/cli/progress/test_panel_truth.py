"""The live panel tells the truth: a row for every take it counts in flight, an ETA from the
first snapshot that counts down between two events.

The panel is rendered into rich's recording console, from the snapshots of a real run
against the emulator (no mocks) or from snapshots built here with an explicit clock.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from rich.console import Console

from runner.cli.progress import LiveDisplay, estimate_eta, render_progress, summary_line
from runner.emulator import run_emulator
from runner.scheduler.polling import PollPolicy
from runner.scheduler.run_context import EngineSettings
from runner.scheduler.snapshot import RunProgress, TakeProgress
from tests.helpers.engine import FAST, Shot, fast_emulator, make_manifest, run_engine
from tests.helpers.terminal import Terminal


def rendered(progress: RunProgress, now: float) -> str:
    console = Console(record=True, width=140, force_terminal=True, file=io.StringIO())
    console.print(render_progress(progress, now))
    return console.export_text()


def counted_in_flight(text: str) -> int:
    found = re.search(r"(\d+) in flight \(limit \d+\)", text)
    assert found, text
    return int(found.group(1))


def rows(text: str) -> int:
    """Take rows in the panel's table, plus the ones its "+ N more" line stands for."""
    shown = len(re.findall(r"^s\d+/take-\d+ ", text, flags=re.MULTILINE))
    more = re.search(r"\+ (\d+) more", text)
    return shown + (int(more.group(1)) if more else 0)


async def test_every_snapshot_of_a_real_run_has_a_row_per_take_in_flight(
        tmp_path: Path) -> None:
    # Slow enough that takes wait at the gateway between their creation and their first
    # poll: the moment the panel used to count them without a row.
    manifest = make_manifest(tmp_path, [Shot("s1", "rows and counts", takes=6)])
    settings = EngineSettings(concurrency=3, submit_rate=0, downloads=2,
                              backoff=FAST.backoff, polling=PollPolicy(
                                  min_interval=0.02, max_interval=0.1, default_estimate=0.2))
    async with run_emulator(fast_emulator(processing_time=0.15)) as emulator:
        outcome = await run_engine(manifest, emulator.base_url, settings=settings)
    assert outcome.summary.all_done
    busy = [snap for snap in outcome.progress if snap.in_flight]
    assert busy, "no snapshot had a take in flight"
    assert max(snap.in_flight for snap in busy) == 3
    for snap in outcome.progress:
        text = rendered(snap, now=snap.started_at + 1)
        if snap.in_flight or snap.queued or snap.submitting or snap.downloading:
            assert counted_in_flight(text) == rows(text) == snap.in_flight, text
        assert len(snap.takes) == snap.in_flight
        assert all(take.task_id for take in snap.takes)


def snapshot(**over: object) -> RunProgress:
    fields: dict[str, object] = dict(
        total=4, done=0, failed=0, in_flight=2, queued=2, downloading=0, submitting=0,
        ambiguous=0, held=0, credits_reserved=48.6, max_credits=None, started_at=1000.0,
        concurrency_limit=2, expected_task=60.0,
        takes=(TakeProgress("s01/take-1", "processing", 10, "task-a", started_at=1000.0),
               TakeProgress("s02/take-1", "pending", 0, "task-b", started_at=1004.0)))
    fields.update(over)
    return RunProgress(**fields)  # type: ignore[arg-type]


def test_the_eta_exists_from_the_first_snapshot_before_anything_was_sent() -> None:
    # Nothing at the gateway, nothing measured: 4 tasks of the 60 s estimate over 2 lanes.
    first = snapshot(in_flight=0, queued=4, takes=())
    assert estimate_eta(first, now=1000.0) == 120.0
    assert "elapsed 0s  ETA ~2m 00s" in rendered(first, now=1000.0)
    assert summary_line(first, now=1000.0).endswith("elapsed 0s, ETA ~2m 00s")


def test_the_eta_uses_the_gateways_hints_then_the_measured_times() -> None:
    hinted = snapshot(takes=(
        TakeProgress("s01/take-1", "processing", 10, "task-a", started_at=1000.0, hint=100.0),
        TakeProgress("s02/take-1", "pending", 0, "task-b", started_at=1000.0, hint=100.0)))
    # The hints stand for the queued takes too: (2 x 100 + 90 + 90) / 2 at 10 s.
    assert estimate_eta(hinted, now=1010.0) == 190.0
    assert "ETA ~3m 10s" in rendered(hinted, now=1010.0)
    measured = snapshot(durations=(30.0,), takes=hinted.takes)
    # Measured: 30 s a task, whatever the hint said; the "~" goes.
    assert estimate_eta(measured, now=1010.0) == (2 * 30 + 20 + 20) / 2
    assert "ETA 50s" in rendered(measured, now=1010.0)


def test_the_live_panel_eta_counts_down_between_two_events() -> None:
    wall, mono = [1010.0], [0.0]
    console = Console(record=True, width=120, force_terminal=True, file=io.StringIO())
    display = LiveDisplay(console, clock=lambda: mono[0], wall_clock=lambda: wall[0])
    with display as observer:
        observer(snapshot())  # event 1 at 10 s: s01 50 s left, s02 54 s, 2 x 60 queued
        wall[0], mono[0] = 1013.0, 1.0
        moved = TakeProgress("s02/take-1", "processing", 5, "task-b", started_at=1004.0)
        observer(snapshot(takes=(snapshot().takes[0], moved)))  # event 2: a percentage moved
    frames = [frame for frame in console.export_text().split("takes   ") if frame]
    etas = [re.search(r"elapsed (\S+)  ETA (~\S+ \S+|~\S+)", frame) for frame in frames]
    shown = [(found.group(1), found.group(2)) for found in etas if found]
    assert ("10s", "~1m 52s") in shown  # (120 + 50 + 54) / 2
    assert ("13s", "~1m 49s") in shown  # 3 s later, each take 3 s nearer its end
    assert all(counted_in_flight(frame) == rows(frame) == 2 for frame in frames)


def test_the_same_snapshot_later_shows_a_smaller_eta() -> None:
    snap = snapshot()
    earlier, later = estimate_eta(snap, now=1010.0), estimate_eta(snap, now=1011.0)
    assert earlier is not None and later == earlier - 1


def test_a_task_past_its_estimate_is_given_what_its_percentage_leaves() -> None:
    late = snapshot(queued=0, in_flight=1, takes=(
        TakeProgress("s01/take-1", "processing", 80, "task-a", started_at=1000.0),))
    assert estimate_eta(late, now=1080.0) == 20.0  # 80 % in 80 s: 20 s to go


PTY_MANIFEST = """\
version: 1
name: pty-rows
output_dir: out
api:
  base_url: emulator
  concurrency: 2
  submit_rate: 50
  emulator: {queue_time: 0.05, processing_time: 1.0, render: cached}
defaults: {duration: 3}
shots:
  - id: s01
    prompt: a harbour at night
    takes: 4
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_in_a_terminal_every_frame_of_a_real_run_has_a_row_per_take_in_flight(
        tmp_path: Path, repo_root: Path) -> None:
    manifest = tmp_path / "rows.yaml"
    manifest.write_text(PTY_MANIFEST, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(repo_root), COLUMNS="120",
               HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    script = f"import sys; from runner.cli import main; sys.exit(main(['run', {str(manifest)!r}]))"
    term = Terminal(env, script=script)
    try:
        term.expect(r"done: 4/4")  # the summary after the panel
    finally:
        assert term.close() == 0
    frames = ANSI.sub("", term.output.replace("\r", "")).split("takes ")[1:]
    busy = [frame for frame in frames if re.search(r"[1-9]\d* in flight", frame)]
    assert busy
    for frame in frames:
        found = re.search(r"(\d+) in flight \(limit 2\)", frame)
        if found:
            assert rows(frame) == int(found.group(1)), frame
