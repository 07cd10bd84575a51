"""Which takes have a coroutine now: a bounded window over the run's takes.

A run of 20,000 takes used to start 20,000 coroutines at once, each parked on the in-flight
limiter or on a dependency, and kept them (frames, tasks, waiters, bound log context, ~3 KB
each) for the whole run: memory grew with the manifest, not with the work in hand. Only a few
dozen takes can do anything at a time (``concurrency`` in flight, ``downloads`` downloading),
so a take gets its coroutine when there is room in a window a little larger than that, and
loses it when it finishes.

Order is kept: takes are started by rank (already at the gateway first: they hold adopted
in-flight slots that submissions wait for), then in plan order. A take that would only wait
for a dependency is not started: it is *parked* on the unfinished take it waits for and put
back in line when that one finishes, so waiting dependents never fill the window and keep
independent takes out (nor deadlock it, waiting for a source that has no room to start).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
from collections.abc import Callable, Sequence

# Takes allowed a coroutine beyond those that can be working (in flight or downloading): they
# wait for an in-flight slot, so that a slot set free is taken at once.
WINDOW_SLACK = 8

Entry = tuple[int, int]  # (rank, index in the plan order)


def window_size(concurrency: int, downloads: int) -> int:
    """Coroutines at most: a waiting take per in-flight slot, plus the working ones, plus slack."""
    return 2 * concurrency + downloads + WINDOW_SLACK


class TakeWindow:
    """Starts takes in order while fewer than ``size`` are live.

    ``blockers(index)`` names the unfinished takes the take at ``index`` would wait for now
    (empty: it can go; else it is queued again when any of them finishes); ``spawn(index)``
    starts its coroutine; ``halted()`` is true once nothing new may start. Call
    :meth:`finished` when a take's outcome is settled and :meth:`admit` when there may be
    room. :attr:`idle` is set once nothing is live and nothing more can start.
    """

    def __init__(self, size: int, *, blockers: Callable[[int], Sequence[str]],
                 spawn: Callable[[int], asyncio.Task[None]],
                 halted: Callable[[], bool]) -> None:
        if size < 1:
            raise ValueError("the window must hold at least one take")
        self.size = size
        self._blockers = blockers
        self._spawn = spawn
        self._halted = halted
        self._line: list[Entry] = []  # a heap
        self._parked: dict[str, list[Entry]] = {}  # unfinished key -> takes waiting for it
        self._parked_entries: set[Entry] = set()  # an entry may be parked on several keys
        self.live: dict[int, asyncio.Task[None]] = {}
        self.peak = 0  # most takes live at once so far
        self.idle = asyncio.Event()

    def add(self, rank: int, index: int) -> None:
        """Queue a take (before :meth:`admit`)."""
        heapq.heappush(self._line, (rank, index))

    @property
    def waiting(self) -> int:
        """Takes queued or parked, without a coroutine yet."""
        return len(self._line) + len(self._parked_entries)

    def admit(self) -> None:
        """Start queued takes while there is room; set :attr:`idle` if nothing is left to do."""
        while self._line and len(self.live) < self.size and not self._halted():
            entry = heapq.heappop(self._line)
            blockers = self._blockers(entry[1])
            if blockers:
                self._parked_entries.add(entry)
                for key in blockers:
                    self._parked.setdefault(key, []).append(entry)
                continue
            index = entry[1]
            task = self._spawn(index)
            self.live[index] = task
            task.add_done_callback(functools.partial(self._ended, index))
        self.peak = max(self.peak, len(self.live))
        if not self.live:
            # Nothing runs, so nothing can unpark a take or free room: what is still queued
            # or parked now stays unstarted (a stop), and the engine settles it.
            self.idle.set()

    def finished(self, key: str) -> None:
        """``key`` has its outcome: put the takes parked on it back in line."""
        for entry in self._parked.pop(key, ()):
            if entry in self._parked_entries:  # not put back already by another of its keys
                self._parked_entries.discard(entry)
                heapq.heappush(self._line, entry)

    def cancel(self, keep: Callable[[int], bool] = lambda index: False) -> None:
        """Cancel every live take but those ``keep`` spares (and the calling task)."""
        current = asyncio.current_task()
        for index, task in list(self.live.items()):
            if task is not current and not keep(index):
                task.cancel()

    def _ended(self, index: int, _task: asyncio.Task[None]) -> None:
        self.live.pop(index, None)
        self.admit()
