"""What a run learns about how long this gateway's tasks really take, against their hint.

Why: the documented gateway gives ``task_info.estimated_time`` in whole seconds (``300``), a
figure that may mean 90 s or 400 s, so a first look aimed by the hint alone must come early
(at 3/4 of it) and costs a second look almost every time. But every task of a run is measured
by its own looks, and tasks sent to one gateway in one run tend to take the same multiple of
their hint. So the run keeps the recent *measured ends* (seconds from creation to the end, on
our clock, divided by the hint; plain seconds in a separate pool for tasks without a hint, or
with a hint of 0, which is how whole-second rounding reports a short task). When enough of them
agree, the first look aims just *after* the end they predict and most tasks are seen done by
it: one look per take.

What counts as a measurement matters more than how many there are. A look that finds a task
already done only says "it ended before now"; taking that moment as the end makes the next
aim later, whose done looks make the one after later still (the censoring feedback). So a
measured end comes only from looks that *bracket* it narrowly (a "not yet" and a "done" within
:attr:`Calibration.tolerance` of each other), narrowed by the reported progress (an end implied
by ``progress`` % at ``elapsed`` s, to the percent). A done look says something only when it was
aimed *before* the predicted end (a probe): a task ended earlier than any measured one. Every
``probe_every`` aimed looks without a new measurement, one look is a probe (at 85 % of the
earliest measured end; found unfinished, the task is looked at next with the others), so a
gateway that speeds up is noticed while its tasks are all seen done at their first look; one
that slows down is noticed by the aimed looks that find tasks unfinished (they measure them,
closing in by the progress or at the poll's shortest interval). Either way, a probe's done
look below the measured ends, or an end far outside them, starts the measurements afresh:
the gateway changed pace, and waiting for the old ones to age out would cost a window of
tasks looked at too early or too late.

When the ends disagree (spread beyond :attr:`Calibration.spread`), aiming after the latest of
them would leave the quick tasks waiting: the first look then comes at 3/4 of the median
measured end (never after the earliest), as it did at 3/4 of the hint, and the reported
progress places the second. Until a pool has :attr:`Calibration.min_samples` measured ends,
that many tasks on a gateway that reports no progress are followed in steps of
:attr:`Calibration.tolerance` of their age once a look found them unfinished, so that their
ends are measured at all (the hint alone places the second look after the end with no
bracket narrow enough to learn from). Looks aimed by measurements may wait longer than the
policy's ``max_interval`` (see :meth:`PollPolicy.look`). ``benchmarks/bench_polling.py``
measured 1.22 polls per take with a right whole-second hint (2 by the hint alone), 1.5 with
no progress reported (2.0), 2.5 with no progress and a hint too low (10).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from runner.scheduler.polling import PollPolicy

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Fit:
    """What the recent measured ends say, in units of the hint (seconds without one).

    ``low`` and ``high`` bound most ends (nearest-rank quantiles; a probe's done look below
    ``low`` lowers it), ``middle`` is the median, ``samples`` how many ends were measured.
    """

    samples: int
    low: float
    middle: float
    high: float

    def tight(self, spread: float, min_samples: int) -> bool:
        """Enough ends, close enough together to aim one look after all of them."""
        return self.samples >= min_samples and self.high <= self.low * (1 + spread)


def _rank(ordered: Sequence[float], quantile: float) -> float:
    index = max(0, math.ceil(quantile * len(ordered) - 1e-9) - 1)
    return ordered[min(index, len(ordered) - 1)]


def fit(samples: Sequence[float], bounds: Sequence[float] = (), *,
        quantile: float = 0.95) -> Fit | None:
    """The spread of measured ends ``samples`` and probes' done looks ``bounds``.

    None when nothing is known. With bounds only, all three figures are the earliest bound
    (every task seen so far ended before it).
    """
    if not samples:
        if not bounds:
            return None
        low = min(bounds)
        return Fit(0, low, low, low)
    ordered = sorted(samples)
    low = min(_rank(ordered, 1 - quantile), *bounds) if bounds \
        else _rank(ordered, 1 - quantile)
    return Fit(len(ordered), low, ordered[len(ordered) // 2], _rank(ordered, quantile))


def measured_end(before: float, done: float, progress: tuple[float, float] | None,
                 tolerance: float) -> float | None:
    """A task's end (seconds from creation) from what its looks saw, or None.

    ``before``: the last answer that found it unfinished (0: none did); ``done``: the answer
    that found it done; ``progress``: the range of ends its reported progress allows (None: no
    reading, or readings that contradict each other or the looks). The end is the middle of
    what is left, when that is within ``tolerance`` of it; a task first seen done is censored
    (it ended at some time before ``done``) and measures nothing.
    """
    low, high = before, done
    if progress is not None and progress[0] <= done and progress[1] >= before:
        low, high = max(low, progress[0]), min(high, progress[1])
    if low <= 0 or high <= 0:
        return None
    if high - low > tolerance * high:
        return None
    return (low + high) / 2


@dataclass
class _Pool:
    """The recent measurements of one kind of task (with a hint, or without)."""

    window: int
    entries: deque[tuple[float, bool]] = field(init=False)  # (end, True when a bound)
    looks: int = 0  # aimed first looks since the last measured end
    stepping: int = 0  # tasks in flight followed in steps to measure the first ends
    aiming: bool = False  # first looks aimed after the measured ends (as the last aim saw)

    def __post_init__(self) -> None:
        self.entries = deque(maxlen=self.window)

    def fit(self, quantile: float) -> Fit | None:
        samples = [value for value, bound in self.entries if not bound]
        bounds = [value for value, bound in self.entries if bound]
        return fit(samples, bounds, quantile=quantile)


@dataclass
class Aim:
    """One task's looks: when the first comes, when the next, and what they saw.

    ``first``: seconds from creation to the first look; ``later``: the estimate later looks
    are timed by (None: the task's own hint); ``probe``: the first look comes before the
    predicted end, so a task found done by it is news; ``steps``: follow a task without
    reported progress in short steps, to measure its end; ``unit``: the hint (1 without one),
    ``pool``: where what the looks saw is learnt (None: nothing is learnt).
    """

    policy: PollPolicy
    first: float
    later: float | None = None
    probe: bool = False
    steps: bool = False
    unit: float = 1.0
    pool: _Pool | None = None
    calibrated: bool = False
    stepper: bool = False  # one of the pool's first measurements (counted while in flight)
    tolerance: float = 0.12
    before: float = 0.0
    progress: tuple[float, float] | None = None
    contradicted: bool = False

    def resumed(self) -> None:
        """The first look is not the planned one (a resumed or late task): it tells nothing."""
        self.probe = False

    def next_delay(self, elapsed: float, progress: int, trip: float,
                   hint: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds until the next look, ``elapsed`` s after creation (see PollPolicy)."""
        estimate = self.later or hint
        if self.calibrated and estimate is not None and elapsed < estimate \
                and not 0 < progress < 100:
            # A probe found the task unfinished: next where the others are looked at.
            return self.policy.look(estimate - elapsed, rng, measured=True)
        delay = self.policy.next_delay(elapsed, estimate, progress, rng, trip=trip)
        if self.steps and not 0 < progress < 100:
            # In steps of the tolerance, so that the look before the end and the one after
            # it are close enough to measure it. Not a leap to near the estimate first: a
            # hint too high would put that leap past the end, and nothing would be measured.
            delay = min(delay, self.policy.look(self.tolerance * elapsed, rng))
        return delay

    def saw(self, elapsed: float, progress: int, trip: float) -> None:
        """An answer ``elapsed`` s after creation found the task pending or processing."""
        self.before = max(self.before, elapsed)
        if self.contradicted or not 0 < progress < 100 or elapsed <= 0:
            return
        shortest = max(0.0, elapsed - trip) * 100 / (progress + 1)
        longest = elapsed * 100 / progress
        if self.progress is not None:
            shortest, longest = max(shortest, self.progress[0]), min(longest, self.progress[1])
        if shortest > longest or longest < self.before:
            # Progress that does not rise with time (or that a later look belies) is not a
            # clock: the looks alone measure this task.
            self.contradicted, self.progress = True, None
        else:
            self.progress = (shortest, longest)


@dataclass
class Calibration:
    """The run's measured task ends and the first looks they aim (see the module's text).

    ``window``: measurements kept per pool (recent ones say most about the next task);
    ``min_samples``: measured ends before a first look is aimed after the end; ``spread``: how
    far apart (high / low - 1) they may be for that; ``quantile``: the share of tasks the aim
    is after; ``margin``: how far after it (more than the policy's +-3 % spread, so the spread
    does not make looks early); ``tolerance``: the widest bracket that counts as a measurement
    (its middle is within half of it); ``probe_every``: aimed looks without a measurement
    before one look is a probe, at ``probe_fraction`` of the earliest predicted end.
    """

    window: int = 24
    min_samples: int = 5
    spread: float = 0.15
    quantile: float = 0.95
    margin: float = 0.05
    tolerance: float = 0.12
    probe_every: int = 8
    probe_fraction: float = 0.85
    _hinted: _Pool = field(init=False)
    _unhinted: _Pool = field(init=False)

    def __post_init__(self) -> None:
        self._hinted = _Pool(self.window)
        self._unhinted = _Pool(self.window)

    def _pool(self, estimate: float | None) -> _Pool:
        return self._hinted if estimate and estimate > 0 else self._unhinted

    def aim(self, policy: PollPolicy, estimate: float | None,
            rng: random.Random | None = None) -> Aim:
        """The looks of a task just created, whose hint is ``estimate``."""
        if not policy.calibrate:
            return Aim(policy, policy.first_delay(estimate, rng), estimate)
        pool = self._pool(estimate)
        unit = estimate if estimate and estimate > 0 else 1.0

        def aimed(first: float, later: float | None, *, probe: bool, steps: bool = False,
                  calibrated: bool = False) -> Aim:
            return Aim(policy, first, later, probe=probe, steps=steps, unit=unit, pool=pool,
                       calibrated=calibrated, stepper=steps and not calibrated,
                       tolerance=self.tolerance)

        def bootstrap() -> bool:
            # Only as many tasks as the missing measurements are followed in steps.
            if (known.samples if known else 0) + pool.stepping >= self.min_samples:
                return False
            pool.stepping += 1
            return True

        known = pool.fit(self.quantile)
        tight = known is not None and known.tight(self.spread, self.min_samples)
        if tight != pool.aiming:
            pool.aiming = tight
            log.info("poll_aim_changed", hinted=pool is self._hinted, measured=tight,
                     **({} if known is None else {"low": round(known.low, 3),
                                                   "high": round(known.high, 3),
                                                   "samples": known.samples}))
        if known is None:  # nothing learnt yet: the hint's look, or default_estimate's
            return aimed(policy.first_delay(estimate, rng), estimate, probe=True,
                         steps=bootstrap())
        if not tight:
            # As the hint's look, from the median measured end, but not after the earliest
            # (half the earliest done look while only those are known: each halves the
            # guess until a look finds a task unfinished). Measured, so not bounded by
            # max_interval as a look timed by the hint is.
            first = min(policy.first_fraction * known.middle, known.low) if known.samples \
                else known.low / 2
            return aimed(policy.look(first * unit, rng, measured=True), known.middle * unit,
                         probe=True, steps=bootstrap())
        pool.looks += 1
        after = known.high * (1 + self.margin) * unit
        if pool.looks >= self.probe_every:
            # Found unfinished, the task is looked at next where the others are (the
            # progress, when there is one, measures it on the way).
            pool.looks = 0
            return aimed(policy.look(self.probe_fraction * known.low * unit, rng,
                                     measured=True),
                         after, probe=True, calibrated=True)
        return aimed(policy.look(after, rng, measured=True), after, probe=False, steps=False,
                     calibrated=True)

    def learn(self, aim: Aim, done: float) -> float | None:
        """A look ``done`` s after creation found the task completed; returns the end learnt."""
        pool = aim.pool
        if pool is None:
            return None
        self.forget(aim)
        end = measured_end(aim.before, done, aim.progress, aim.tolerance)
        if end is not None:
            self._record(pool, end / aim.unit, bound=False)
            pool.looks = 0
            return end
        if aim.probe and aim.before <= 0:
            # Done before a look aimed before the predicted end: the gateway got faster.
            # Probe again at once, so the aim follows it down quickly.
            self._record(pool, done / aim.unit, bound=True)
            if aim.calibrated:
                pool.looks = self.probe_every
        return None

    def forget(self, aim: Aim) -> None:
        """The task ended without a video (it failed): its end says nothing of the others'."""
        if aim.stepper and aim.pool is not None:
            aim.stepper = False
            aim.pool.stepping -= 1

    def _record(self, pool: _Pool, value: float, *, bound: bool) -> None:
        known = pool.fit(self.quantile) if pool.aiming else None
        # A probe's done look below the earliest end is news by itself; a measured end
        # counts beyond the spread the ends are allowed.
        if known is not None and (
                value < (known.low if bound else known.low / (1 + self.spread))
                or (not bound and value > known.high * (1 + self.spread))):
            # Far outside ends that agreed: the gateway changed pace, and what was measured
            # before says nothing of the next tasks (aging it out would take a window of
            # tasks looked at too early or too late).
            log.info("poll_times_changed", hinted=pool is self._hinted, low=round(known.low, 3),
                     high=round(known.high, 3), now=round(value, 3), bound=bound)
            pool.entries.clear()
        pool.entries.append((value, bound))
