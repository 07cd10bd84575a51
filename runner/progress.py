"""Live progress of ``shotrun run``: a rich display on a terminal, one-line summaries elsewhere.

The scheduler hands an observer a frozen :class:`~runner.scheduler.progress.RunProgress` on
every state change. :func:`make_observer` picks how to show it:

- a terminal: a rich ``Live`` panel (overall bar with done/total, in flight, queued,
  downloading, failed, credits reserved against the budget, an ETA learned from the task times
  seen so far, and a table of the takes at the gateway with their progress);
- not a terminal (cron, CI, ``| tee``): a plain line now and then - when something changed, at
  most every ``min_interval`` seconds, and at least every ``heartbeat`` seconds while calls come;
- ``--quiet``: nothing.

The observer is called from the engine's event loop, so ``__call__`` only stores the snapshot
(and, rate-limited, asks for a redraw): drawing never holds up the run. ``NO_COLOR`` is honoured
by rich's console; the plain lines have no colour at all.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from runner import log
from runner.money import CREDITS, format_amount, unit_word
from runner.scheduler.progress import RunProgress, TakeProgress

MAX_ROWS = 8  # takes shown in the in-flight table; the rest are counted


def estimate_eta(progress: RunProgress) -> float | None:
    """Seconds until every remaining take is done, from the task durations seen so far.

    Remaining work is a full typical task for each queued or submitting take plus what is left
    of each take at the gateway (by its reported percentage), spread over the concurrency limit.
    ``None`` until a first task has completed: a guess from nothing would only mislead.
    """
    if not progress.durations:
        return None
    typical = statistics.median(progress.durations)
    waiting = progress.queued + progress.submitting
    at_gateway = sum(typical * (1 - min(max(t.progress, 0), 100) / 100) for t in progress.takes)
    unseen = max(progress.in_flight - len(progress.takes), 0) * typical
    lanes = max(progress.concurrency_limit, 1)
    return (waiting * typical + at_gateway + unseen) / lanes


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
    if progress.submitting:
        parts.append(f"{progress.submitting} submitting")
    if progress.ambiguous or progress.held:
        parts.append(f"{progress.ambiguous} ambiguous, {progress.held} held")
    left = unfinished(progress)
    if left:
        parts.append(f"{left} left for the next run")
    parts.append(f"credits {format_credits(progress)}")
    parts.append(f"elapsed {format_duration(now - progress.started_at)}")
    if not settled(progress):
        parts.append(f"ETA {format_duration(estimate_eta(progress))}")
    line = "shotrun: " + ", ".join(parts)
    if progress.stopping:
        line += f" (not submitting more: {stop_head(progress)})"
    return line


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

    @staticmethod
    def _key(progress: RunProgress) -> tuple[object, ...]:
        # What counts as "a change" worth a line: counts, not gateway percentages.
        return (progress.done, progress.failed, progress.in_flight, progress.queued,
                progress.downloading, progress.ambiguous, progress.held, progress.stopping)

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
        if self._latest is not None and not self._latest_shown:
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
    if not settled(progress):
        timing.append_text(Text.assemble(
            "  ETA ", (format_duration(estimate_eta(progress)), "bold")))
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


def is_interactive(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal that can redraw (not ``TERM=dumb``)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def make_observer(
    console_stream: TextIO, *, quiet: bool = False, interactive: bool | None = None
) -> ProgressDisplay:
    """The display for ``shotrun run``: use as ``with make_observer(...) as observer:``.

    ``interactive`` None means: decide from ``console_stream`` (a terminal gets the live panel).
    """
    if quiet:
        return ProgressDisplay()
    if interactive is None:
        interactive = is_interactive(console_stream)
    if not interactive:
        return PlainDisplay(console_stream)
    console = Console(file=console_stream, force_terminal=True, highlight=False)
    return LiveDisplay(console)
