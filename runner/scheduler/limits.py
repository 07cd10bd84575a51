"""The three separate limits of a run: tasks in flight, creation pace, downloads at once.

They are separate because they protect different things: the account's concurrency limit at
the gateway (which no documentation states, so it is *found* by meeting 429s), the gateway's
request rate, and the local machine's bandwidth and disk.

- :class:`AimdLimiter` bounds the tasks pending/processing at the gateway. It starts at
  ``api.concurrency``, halves on a 429 (multiplicative decrease) and grows by one after a
  window of successes (additive increase), never below 1 nor above where it started: a run
  finds the real limit without hammering, like TCP congestion control. A 429 that answers
  such a +1 probe steps back by one instead (the limit below was fine), and the next probe
  waits twice as long: at a cap of 8 the limit stays at 8, not swinging between 4 and 9.
- :class:`TokenBucket` spaces creation requests to ``api.submit_rate`` per second.
- :class:`DownloadSlots` bounds downloads at once (``api.downloads``), earliest link expiry
  first.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

log = structlog.get_logger()

Clock = Callable[[], float]


class AimdLimiter:
    """An adjustable semaphore: additive increase, multiplicative decrease.

    A slot is held by a take from just before its creation request until its task leaves the
    gateway's queue (completed or failed). Tasks found in flight when a run resumes are
    *adopted* (:meth:`adopt`), which may put ``in_flight`` above ``limit`` for a while; new
    acquisitions then wait until enough of them finish.
    """

    def __init__(self, initial: int, *, maximum: int | None = None,
                 window: int | None = None) -> None:
        if initial < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self._limit = initial
        self._maximum = max(initial, maximum or initial)
        self._window = window  # successes needed per +1; None means "the current limit"
        self._in_flight = 0
        self._successes = 0
        self._epoch = 0
        self._probed = False  # the limit was raised since the last decrease
        self._patience = 1  # windows per +1; doubles after each probe the gateway refused
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """How many tasks may be in flight now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """How many slots are held."""
        return self._in_flight

    async def acquire(self) -> None:
        """Wait for a free slot and take it (first come, first served)."""
        if not self._waiters and self._in_flight < self._limit:
            self._in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted and cancelled at the same moment: give it back
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def adopt(self) -> None:
        """Take a slot without waiting: for a task that is already at the gateway."""
        self._in_flight += 1

    def release(self) -> None:
        """Give a slot back (the task finished, or the creation did not happen)."""
        if self._in_flight <= 0:
            raise RuntimeError("release() without a held slot")
        self._in_flight -= 1
        self._wake()

    @property
    def epoch(self) -> int:
        """Changes at every decrease; pass the value seen at sending to :meth:`on_rate_limited`."""
        return self._epoch

    def on_rate_limited(self, epoch: int | None = None) -> None:
        """A 429: halve the limit (never below 1; one step back after a probe), restart the window.

        Several requests sent at the old limit meet their 429s together; like TCP, the limit
        is halved once for them all: a 429 for a request sent before the last decrease
        (``epoch`` older than :attr:`epoch`) changes nothing.
        """
        if epoch is not None and epoch != self._epoch:
            return
        before = self._limit
        if self._probed:
            # The limit below this one was fine a moment ago: the 429 answers the probe, so
            # step back to it (halving here made a known cap of 8 swing between 4 and 9) and
            # probe less often from now on.
            self._limit = max(1, self._limit - 1)
            self._patience = min(self._patience * 2, 64)
        else:
            self._limit = max(1, self._limit // 2)
        self._probed = False
        self._successes = 0
        self._epoch += 1
        if self._limit != before:
            log.info("concurrency_decreased", limit=self._limit, was=before)

    def on_success(self) -> None:
        """A creation was accepted: after a window of them, allow one more in flight."""
        self._successes += 1
        window = (self._window or self._limit) * self._patience
        if self._successes >= window and self._limit < self._maximum:
            self._limit += 1
            self._probed = True
            self._successes = 0
            log.info("concurrency_increased", limit=self._limit)
            self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, with bursts of ``burst``.

    ``rate`` <= 0 means unlimited. The default burst of one spaces requests evenly, which is
    what "N creation requests per second at most" means to a gateway counting per second.
    """

    def __init__(self, rate: float, *, burst: float = 1.0, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(1.0, burst)
        self._clock = clock
        self._tokens = self._burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """Acquisitions per second (<= 0: unlimited)."""
        return self._rate

    def reserve(self) -> float:
        """Take one token now (possibly going into debt); return how long to wait for it."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        async with self._lock:
            delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


class DownloadSlots:
    """``api.downloads`` at once, handed out earliest deadline first.

    Result links expire (24 h after completion), so when more tasks are complete than there
    are slots, the one whose link dies first downloads first: ``slot(priority)`` with the
    link's expiry time as the priority (smaller first; ties in arrival order).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("downloads must be at least 1")
        self.size = size
        self.active = 0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    @asynccontextmanager
    async def slot(self, priority: float = 0.0) -> AsyncIterator[None]:
        """Hold one download slot for the body of the ``async with``."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    @property
    def waiting(self) -> int:
        """Downloads waiting for a slot."""
        return sum(1 for *_, waiter in self._waiters if not waiter.done())

    async def _acquire(self, priority: float) -> None:
        if self.active < self.size and not self.waiting:
            self.active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._counter), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()
            raise

    def _release(self) -> None:
        self.active -= 1
        while self._waiters and self.active < self.size:
            *_, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)
