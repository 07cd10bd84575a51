"""Live progress of ``shotrun run``: a rich panel, plain lines, or JSON lines for scripts.

The scheduler hands an observer a frozen :class:`~runner.scheduler.snapshot.RunProgress` on
every state change (and, to a display that asks for them, each take's moves as
:class:`~runner.scheduler.snapshot.TakeEvent`). :func:`make_observer` picks how to show them
from ``--progress``:

- ``auto`` (the default): ``bar`` on a terminal, ``lines`` elsewhere, nothing with ``--quiet``;
- ``bar``: a rich ``Live`` panel (overall bar with done/total, in flight, queued,
  downloading, failed, credits reserved against the budget, the ETA, and a row for every
  take at the gateway with its progress), redrawn a few times a second so the elapsed time
  and the ETA tick between events;
- ``lines`` (cron, CI, ``| tee``): a plain line now and then - when something changed, at most
  every ``min_interval`` seconds, and at least every ``heartbeat`` seconds while calls come;
- ``jsonl``: one JSON object per event on stdout (:class:`JsonlDisplay`);
- ``none``: nothing.

The ETA exists from the first snapshot: the expected time of a task is the median this run
measured, else the gateway's hints, else the poll policy's estimate (shown with a ``~``
until tasks are measured), and takes at the gateway count down by their age.

The observer is called from the engine's event loop, so ``__call__`` only stores the snapshot
(and, rate-limited, asks for a redraw): drawing never holds up the run. ``NO_COLOR`` is honoured
by rich's console; the plain lines have no colour at all.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from runner.core import log
from runner.core.isotime import iso_time
from runner.core.money import CREDITS, format_amount, unit_word
from runner.core.redact import redact
from runner.scheduler.snapshot import (
    PROGRESS_MODES,
    EventSink,
    RunProgress,
    TakeEvent,
    TakeProgress,
)

MAX_ROWS = 8  # takes shown in the in-flight table; the rest are counted


def task_time(progress: RunProgress) -> float | None:
    """Seconds a task is taken to last: measured, else hinted, else the policy's estimate.

    The median of the task times this run measured once there are any; before that the
    median of the gateway's hints (``estimated_time``) for the tasks at it; before any task
    was even created, ``expected_task`` (the poll policy's ``default_estimate``, the same
    figure the first status check of a task without a hint is aimed by).
    """
    if progress.durations:
        return _median_of(progress.durations)
    hints = [take.hint for take in progress.takes if take.hint]
    if hints:
        return statistics.median(hints)
    return progress.expected_task


_last_median: tuple[tuple[float, ...], float] = ((), 0.0)


def _median_of(durations: tuple[float, ...]) -> float:
    """The median of ``durations``, kept while the same tuple comes back.

    The engine hands out the same tuple (up to 500 times) until a task completes, and a
    display asks for the ETA at every redraw or, in jsonl mode, at every change of counts:
    sorting it each time was most of the cost of a line for a long run.
    """
    global _last_median
    seen, value = _last_median
    if seen is not durations:
        value = statistics.median(durations)
        _last_median = (durations, value)
    return value


def measured(progress: RunProgress) -> bool:
    """True when the ETA comes from task times this run measured (not from estimates)."""
    return bool(progress.durations)


def _left_at_gateway(take: TakeProgress, typical: float, now: float | None,
                     measured_times: bool) -> float:
    """Seconds ``take`` still needs at the gateway, at ``now`` when its age is known.

    By its age against the time expected of it (its own hint until tasks are measured), so
    that the ETA counts down between two answers of the gateway; without an age, by the
    percentage the gateway last reported. A task past its expected time is given what its
    percentage says is left (nothing when it reports none): the ETA never invents lateness.
    """
    expected = take.hint if take.hint and not measured_times else typical
    done = min(max(take.progress, 0), 100)
    if now is None or take.started_at is None:
        return expected * (1 - done / 100)
    age = max(now - take.started_at, 0.0)
    left = expected - age
    if left > 0:
        return left
    return age * (100 - done) / done if 0 < done < 100 else 0.0


def estimate_eta(progress: RunProgress, now: float | None = None) -> float | None:
    """Seconds until every remaining take is done, spread over the concurrency limit.

    Remaining work is a full expected task (:func:`task_time`) for each queued or
    submitting take plus what is left of each take at the gateway, over the lanes; never
    less than the longest take at the gateway, nor than one full task while any waits.
    ``now`` (epoch seconds) makes the takes at the gateway count down by their age, so a
    display redrawn every second shows it ticking. ``None`` only when nothing is known to
    estimate from (a snapshot without ``expected_task``, hints or measured times).
    """
    typical = task_time(progress)
    if typical is None:
        return None
    from_measures = measured(progress)
    waiting = progress.queued + progress.submitting
    lefts = [_left_at_gateway(take, typical, now, from_measures) for take in progress.takes]
    unseen = max(progress.in_flight - len(progress.takes), 0) * typical
    lanes = max(progress.concurrency_limit, 1)
    spread = (waiting * typical + sum(lefts) + unseen) / lanes
    return max(spread, max(lefts, default=0.0), typical if waiting else 0.0)


def format_eta(progress: RunProgress, now: float) -> str:
    """``3m 20s`` from measured task times, ``~3m 20s`` from estimates, ``?`` unknown."""
    eta = estimate_eta(progress, now)
    text = format_duration(eta)
    return text if eta is None or measured(progress) else "~" + text


def format_duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s``, ``42s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_credits(progress: RunProgress) -> str:
    """``40.5/500`` reserved of the cap; the unit's word after it unless it is credits."""
    unit = progress.unit
    used = format_amount(progress.credits_reserved, unit, bare=True, short=True)
    if progress.max_credits is not None:
        used += "/" + format_amount(progress.max_credits, unit, bare=True, short=True)
    return used if unit == CREDITS else f"{used} {unit_word(unit)}"


def unfinished(progress: RunProgress) -> int:
    """Takes neither finished nor under way: after a stop, left for the next run.

    Once a stopped run has settled, the engine no longer counts the tasks it leaves at the
    gateway as "in flight" (nor the takes it never submitted as "queued"): a line saying "0 in
    flight" would contradict the summary's "still at the gateway: 2". These takes are counted
    here instead, as what they are to the user: work the next run picks up.
    """
    return max(progress.total - progress.done - progress.failed - progress.held
               - _under_way(progress), 0)


def _under_way(progress: RunProgress) -> int:
    return progress.in_flight + progress.queued + progress.downloading + progress.submitting


def settled(progress: RunProgress) -> bool:
    """True once a stopped run has nothing under way any more (the summary comes next)."""
    return progress.stopping is not None and _under_way(progress) == 0


def stop_head(progress: RunProgress) -> str:
    """Why submitting stopped, in a few words (the summary and the stop notice say the rest).

    The full message ("interrupted: tasks in flight keep rendering at the gateway; run again
    to collect them") is printed when the stop happens and in the summary; repeating it in
    every progress line made one Ctrl-C print it four times.
    """
    text = progress.stopping or ""
    # The head ends at the first ": ", "; " or " (": "out of credits (1102: ...)" is said
    # as "out of credits", never cut inside its parentheses.
    ends = [found for mark in (": ", "; ", " (") if (found := text.find(mark)) >= 0]
    return text[:min(ends)] if ends else text


def summary_line(progress: RunProgress, now: float) -> str:
    """The one-line summary of plain mode (also the headline of the live panel)."""
    parts = [f"{progress.done}/{progress.total} done", f"{progress.failed} failed"]
    if not settled(progress):
        parts += [f"{progress.in_flight} in flight", f"{progress.queued} queued",
                  f"{progress.downloading} downloading"]
        if progress.elsewhere:
            parts.append(f"{progress.elsewhere} with other runners")
    if progress.submitting:
        parts.append(f"{progress.submitting} submitting")
    if progress.ambiguous or progress.held:
        parts.append(f"{progress.ambiguous} ambiguous, {progress.held} held")
    left = unfinished(progress)
    if left:
        parts.append(f"{left} left for the next run")
    parts.append(f"credits {format_credits(progress)}")
    parts.append(f"elapsed {format_duration(now - progress.started_at)}")
    if _under_way(progress):  # nothing to wait for: no ETA (a run with nothing to do)
        parts.append(f"ETA {format_eta(progress, now)}")
    line = "shotrun: " + ", ".join(parts)
    if progress.stopping:
        line += f" (not submitting more: {stop_head(progress)})"
    return line


def counts_key(progress: RunProgress) -> tuple[object, ...]:
    """What counts as "a change" worth a line: counts, not gateway percentages."""
    return (progress.done, progress.failed, progress.in_flight, progress.queued,
            progress.downloading, progress.submitting, progress.ambiguous, progress.held,
            progress.stopping)


class ProgressDisplay:
    """Base display: a context manager and an observer; shows nothing (``--quiet``)."""

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __call__(self, progress: RunProgress) -> None:
        return None

    def event_sink(self) -> EventSink | None:
        """Where the engine tells each take's moves; None: this display shows counts only
        (and the engine builds no events)."""
        return None

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run's summary (``run --json``'s document), once the run is over."""
        return None


class PlainDisplay(ProgressDisplay):
    """Periodic one-line summaries for logs: on change (rate-limited) and as a heartbeat."""

    def __init__(
        self,
        stream: TextIO,
        *,
        min_interval: float = 10.0,
        heartbeat: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.clock = clock
        self.wall_clock = wall_clock
        self._last_at: float | None = None
        self._last_key: tuple[object, ...] | None = None
        self._latest: RunProgress | None = None
        self._latest_shown = True

    _key = staticmethod(counts_key)

    def _emit(self, progress: RunProgress) -> None:
        self.stream.write(summary_line(progress, self.wall_clock()) + "\n")
        self.stream.flush()
        self._last_at = self.clock()
        self._last_key = self._key(progress)
        self._latest_shown = True

    def __call__(self, progress: RunProgress) -> None:
        self._latest = progress
        self._latest_shown = False
        now = self.clock()
        if self._last_at is None:
            self._emit(progress)
            return
        since = now - self._last_at
        changed = self._key(progress) != self._last_key
        if (changed and since >= self.min_interval) or since >= self.heartbeat:
            self._emit(progress)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The last state is always on screen, once: not again when only the clock moved
        # since its line (a run with nothing to do printed the same line twice).
        if self._latest is not None and not self._latest_shown \
                and self._key(self._latest) != self._last_key:
            self._emit(self._latest)


def _take_table(takes: tuple[TakeProgress, ...], more: int) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
    table.add_column("take", style="bold", no_wrap=True)
    table.add_column("gateway", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("task", style="dim", no_wrap=True, overflow="ellipsis", max_width=36)
    for take in takes:
        # fal.ai says how many requests are ahead of a queued one, never a percentage.
        status = take.status if take.queue_position is None or take.status != "pending" \
            else f"{take.status} (#{take.queue_position + 1} in queue)"
        table.add_row(
            take.key,
            status,
            ProgressBar(total=100, completed=min(max(take.progress, 0), 100), width=20,
                        complete_style="cyan", finished_style="green"),
            f"{take.progress}%",
            take.task_id or "",
        )
    if more:
        table.add_row(Text(f"+ {more} more", style="dim"), "", "", "", "")
    return table


def render_progress(progress: RunProgress, now: float) -> RenderableType:
    """The live panel for one snapshot (a pure function, so it can be tested and pictured)."""
    finished = progress.done + progress.failed
    head = Table.grid(padding=(0, 1))
    head.add_column(no_wrap=True)
    head.add_column(no_wrap=True)
    head.add_column(no_wrap=True)
    head.add_row(
        Text("takes", style="bold"),
        ProgressBar(total=max(progress.total, 1), completed=finished, width=40,
                    complete_style="green", finished_style="bold green"),
        Text.assemble((f"{progress.done}/{progress.total} done", "bold green"), "  ",
                      (f"{progress.failed} failed", "bold red" if progress.failed else "dim")),
    )
    if progress.max_credits:
        head.add_row(
            Text("credits", style="bold"),
            ProgressBar(total=progress.max_credits, completed=progress.credits_reserved,
                        width=40, complete_style="yellow"),
            Text(format_credits(progress) + " reserved"),
        )
    else:
        head.add_row(Text("credits", style="bold"), Text(format_credits(progress) + " reserved"),
                     Text(""))
    counts = Text() if settled(progress) else Text.assemble(
        (f"{progress.in_flight}", "bold cyan"), f" in flight (limit {progress.concurrency_limit})",
        "  ", (f"{progress.queued}", "bold"), " queued",
        "  ", (f"{progress.downloading}", "bold"), " downloading",
        "  ", (f"{progress.submitting}", "bold"), " submitting",
    )
    if progress.ambiguous or progress.held:
        counts.append(f"  {progress.ambiguous} ambiguous, {progress.held} held", style="yellow")
    left = unfinished(progress)
    if left:
        counts.append(f"  {left} left for the next run", style="bold yellow")
    timing = Text.assemble("elapsed ", (format_duration(now - progress.started_at), "bold"))
    if _under_way(progress):
        timing.append_text(Text.assemble("  ETA ", (format_eta(progress, now), "bold")))
    parts: list[RenderableType] = [head, counts, timing]
    if progress.stopping:
        parts.append(Text(f"not submitting more: {stop_head(progress)}", style="bold yellow"))
    if progress.takes:
        shown = progress.takes[:MAX_ROWS]
        parts.append(_take_table(shown, len(progress.takes) - len(shown)))
    return Group(*parts)


class LiveDisplay(ProgressDisplay):
    """A rich ``Live`` panel redrawn from the latest snapshot (a few times a second at most)."""

    def __init__(
        self,
        console: Console,
        *,
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.console = console
        self.clock = clock
        self.wall_clock = wall_clock
        self.min_interval = 1.0 / refresh_per_second
        self._latest: RunProgress | None = None
        self._last_refresh = float("-inf")
        self._live = Live(
            console=console,
            get_renderable=self._renderable,
            refresh_per_second=refresh_per_second,
            transient=False,
            redirect_stdout=False,  # stdout may be a file (--json): leave it alone
            redirect_stderr=True,
        )
        self._saved_console: TextIO | None = None

    def _renderable(self) -> RenderableType:
        if self._latest is None:
            return Text("shotrun: starting…", style="dim")
        return render_progress(self._latest, self.wall_clock())

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        # Live swapped sys.stderr for a proxy that prints above the panel; the log's console
        # still holds the real stream, and a warning written there would tear the panel. Point
        # it at the proxy while the panel is up (restored on exit).
        self._saved_console = log.redirect_console(sys.stderr)
        return self

    def __call__(self, progress: RunProgress) -> None:
        self._latest = progress
        now = self.clock()
        if now - self._last_refresh >= self.min_interval:
            self._last_refresh = now
            self._live.refresh()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._live.stop()  # draws the last snapshot once more and leaves it on screen
        finally:
            if self._saved_console is not None:
                log.redirect_console(self._saved_console)
                self._saved_console = None


class JsonlDisplay(ProgressDisplay):
    """One JSON object per line for scripts (``run --progress jsonl``), on ``stream``.

    Each line has ``event``, ``at`` (ISO 8601 UTC) and ``elapsed`` (seconds since the run
    started); take events add ``take`` and what they carry (:data:`TAKE_EVENTS`). The first
    snapshot is told as ``run_started``, every change of the counts after it as
    ``progress`` (counts, credits and ``eta_seconds``), and the command ends the stream with
    ``run_finished`` (:meth:`finish`). Lines are flushed one by one: a reader sees each
    event when it happens.
    """

    def __init__(self, stream: TextIO, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.stream = stream
        self.wall_clock = wall_clock
        self._started_at: float | None = None
        self._last_key: tuple[object, ...] | None = None
        self._reader_gone = False

    def _write(self, document: dict[str, Any]) -> None:
        if self._reader_gone:
            return
        now = self.wall_clock()
        head: dict[str, Any] = {"event": document.pop("event"), "at": iso_time(now),
                                "elapsed": round(now - (self._started_at or now), 3)}
        try:
            self.stream.write(redact(json.dumps({**head, **document}, default=str)) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away (``| head -1``): the run goes on and collects what it
            # paid for; the stream stops, quietly (its buffer dropped, not flushed again).
            self._reader_gone = True
            _silence(self.stream)

    def __call__(self, progress: RunProgress) -> None:
        key = counts_key(progress)
        if key == self._last_key:
            return
        first = self._started_at is None
        if first:
            self._started_at = progress.started_at
        self._last_key = key
        self._write({"event": "run_started" if first else "progress",
                     **progress_counts(progress, self.wall_clock())})

    def event_sink(self) -> EventSink:
        return self.on_event

    def on_event(self, event: TakeEvent) -> None:
        """A take moved (the engine's event sink)."""
        self._write({"event": event.event, "take": event.take, **event.details})

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The last line: the run's summary, as ``run --json`` prints it."""
        self._write({"event": "run_finished", "summary": dict(summary)})


def _silence(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at /dev/null: what is still buffered for a reader that
    went away is then dropped at exit instead of raising BrokenPipeError once more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, AttributeError, ValueError):  # not a real file (a test's StringIO)
        pass


def progress_counts(progress: RunProgress, now: float) -> dict[str, Any]:
    """A snapshot's counts as plain JSON values (``run_started`` and ``progress`` lines)."""
    eta = estimate_eta(progress, now) if _under_way(progress) else 0.0
    return {
        "total": progress.total, "done": progress.done, "failed": progress.failed,
        "in_flight": progress.in_flight, "queued": progress.queued,
        "with_other_runners": progress.elsewhere,
        "submitting": progress.submitting, "downloading": progress.downloading,
        "ambiguous": progress.ambiguous, "held": progress.held,
        "left_for_next_run": unfinished(progress),
        "credits_reserved": round(progress.credits_reserved, 4),
        "max_credits": progress.max_credits, "concurrency": progress.concurrency_limit,
        "eta_seconds": None if eta is None else round(eta, 1),
        "eta_measured": measured(progress), "stopping": progress.stopping,
    }


def is_interactive(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal that can redraw (not ``TERM=dumb``)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"




def make_observer(
    console_stream: TextIO, *, quiet: bool = False, interactive: bool | None = None,
    mode: str = "auto", events_stream: TextIO | None = None,
) -> ProgressDisplay:
    """The display for ``shotrun run``: use as ``with make_observer(...) as observer:``.

    ``mode`` is ``--progress``: ``auto`` (the live panel on a terminal, plain lines
    elsewhere, nothing with ``--quiet``), ``bar`` (the panel, even off a terminal),
    ``lines`` (plain lines, even on one), ``jsonl`` (JSON lines on ``events_stream``,
    stdout by default) or ``none``. ``interactive`` None means: decide from
    ``console_stream``. An explicit mode wins over ``--quiet``, which silences the rest.
    """
    if mode not in PROGRESS_MODES:
        raise ValueError(f"unknown progress mode {mode!r}")
    if mode == "jsonl":
        return JsonlDisplay(events_stream or sys.stdout)
    if mode == "none" or (mode == "auto" and quiet):
        return ProgressDisplay()
    if mode == "auto":
        mode = "bar" if (is_interactive(console_stream) if interactive is None
                         else interactive) else "lines"
    if mode == "lines":
        return PlainDisplay(console_stream)
    console = Console(file=console_stream, force_terminal=True, highlight=False)
    return LiveDisplay(console)
