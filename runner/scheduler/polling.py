"""When to ask the gateway about a task again.

A render takes minutes, so polling every second wastes requests (and rate limit) while
polling every minute wastes the 24-hour link window and the user's time. The gateway gives
a hint, ``task_info.estimated_time``: the first check is made near it, later checks are
spaced by what is *left* (estimated from the hint, or from the reported progress), within
bounds. A random spread of +-``spread`` keeps the polls of hundreds of tasks created in the
same second from arriving at the gateway in the same second (3 % of a 2-minute render is
several seconds).

The hint is rough: the documented gateway gives it in whole seconds (``300``), which may mean
90 s or 400 s. So this policy is what a task gets until the run has measured how its
gateway's tasks really relate to their hint; then :mod:`runner.scheduler.calibration` aims
the first check just after the end those measurements predict, and this policy times the
checks after it.

The bounds are settings so that tests against a fast emulator stay fast and a real run stays
polite.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Poll timing. Every delay lies in [min_interval, max_interval] before the spread (a
    first check aimed by measured task times may wait longer: see :meth:`look`).

    ``first_fraction`` scales the estimated time for the first check: three quarters of it,
    so that a task finishing before its estimate is seen soon, and the progress it reports by
    then says when it will end. Later checks wait ``remaining_fraction`` of the remaining time
    (by the reported progress when there is one, sharpened by the estimate when the two agree;
    else by the estimate), aiming a little *after* the predicted end with a small spread
    (1.04 x (1 - 0.03) > 1): a check that comes early costs
    a whole extra request, one that comes late only those few percent of delay, and
    ``max_interval`` bounds what a misleading progress can cost. ``benchmarks/bench_polling.py``
    measured 2 polls per take with a right estimate or one too low (against 2.4 and 3.7 when
    checks aimed at 0.9x the estimate, then half the time left), 2.0-2.1 with a right
    estimate and no progress reported, 10 with no progress and a hint 2x too low (the late
    checks' geometric growth); tasks of +-50 % around the estimate keep the slots busy. With
    ``calibrate`` (the default; ``--poll-calibration off`` clears it) the run's measured task
    ends aim the first check once they agree, and the same benchmark measures 1.2 polls per
    take with a right estimate or one too low, 1.5 with no progress, 2.5 with no progress and
    a hint too low. ``default_estimate`` stands in when the gateway gives no hint (or 0,
    whole-second rounding of a short task) until the run has measured such tasks. A task is
    never abandoned for being late: a paid task is collected however late it is, polled at
    intervals of ``late_fraction`` of its lateness (growing geometrically towards
    ``max_interval``).
    """

    min_interval: float = 2.0
    max_interval: float = 30.0
    first_fraction: float = 0.75
    remaining_fraction: float = 1.04
    default_estimate: float = 300.0
    spread: float = 0.03
    late_fraction: float = 0.5
    calibrate: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError("polling needs 0 < min_interval <= max_interval")
        if not 0 <= self.spread < 1:
            raise ValueError("spread must be in [0, 1)")

    def _clamp(self, value: float) -> float:
        return min(self.max_interval, max(self.min_interval, value))

    def _spread(self, value: float, rng: random.Random | None) -> float:
        if self.spread == 0:
            return value
        return value * (rng or _rng).uniform(1 - self.spread, 1 + self.spread)

    def look(self, seconds: float, rng: random.Random | None = None, *,
             measured: bool = False) -> float:
        """A wait of ``seconds``, within the bounds and spread like every other wait.

        ``measured``: a first look aimed by the task times this run measured
        (:mod:`runner.scheduler.calibration`) may wait longer than ``max_interval``: that bound
        limits what a hint or a progress that misleads can cost, and a measured aim is neither
        (with a 300 s task and the real gateway's 30 s bound, it is the difference between
        one look and ten).
        """
        bounded = max(self.min_interval, seconds) if measured else self._clamp(seconds)
        return self._spread(bounded, rng)

    def first_delay(self, estimated_time: float | None,
                    rng: random.Random | None = None) -> float:
        """Seconds from creation (or adoption) to the first status check."""
        estimate = estimated_time if estimated_time and estimated_time > 0 \
            else self.default_estimate
        return self._spread(self._clamp(estimate * self.first_fraction), rng)

    def next_delay(self, elapsed: float, estimated_time: float | None, progress: int = 0,
                   rng: random.Random | None = None, *, trip: float = 0.0) -> float:
        """Seconds until the next check of a task ``elapsed`` seconds after its creation.

        ``elapsed`` runs from when the creation request was sent to when the answer that
        reported ``progress`` arrived (so it is never less than the task's age at the
        gateway); ``trip`` is how long the creation's answer took to come back (the gateway's
        clock for the task started somewhere in it).

        Before the estimate, the wait is a share of the remaining time (the progress's guess
        when the gateway reports progress, since it measures this very task; else the
        estimate's); past it, a share of the lateness, so intervals grow geometrically from
        ``min_interval`` to ``max_interval``.
        """
        estimate = estimated_time if estimated_time and estimated_time > 0 \
            else self.default_estimate
        time_left = estimate - elapsed
        progress_left = 0.0
        if 0 < progress < 100 and elapsed > 0:
            progress_left = self._end(elapsed, estimate, progress, trip) - elapsed
        if time_left > 0:
            wait = (progress_left or time_left) * self.remaining_fraction
        else:
            # Late: wait in proportion to the lateness, so the intervals grow geometrically
            # and a task stuck for an hour costs a few dozen polls, even when it claims to be
            # at 99 % all along.
            wait = max(-time_left * self.late_fraction, progress_left * self.remaining_fraction)
        return self._spread(self._clamp(wait), rng)

    @staticmethod
    def _end(elapsed: float, estimate: float, progress: int, trip: float) -> float:
        """When a task reporting ``progress`` % ends at the latest, on our clock.

        A whole percentage means the task was between ``progress`` and ``progress`` + 1 %
        done, so it lasts between the two times below (the gateway's clock started within
        ``trip`` after ours). The latest end is the progress's, which is never early but
        is late by the percent it cannot tell (1.3 % of the task at 75 %, a third of the
        delays the slots benchmark measured). An estimate within the range agrees with the
        progress and is exact where the progress is coarse, so the end is then the
        estimate's, from the latest the task can have started.
        """
        longest = elapsed * 100 / progress
        shortest = max(0.0, elapsed - trip) * 100 / (progress + 1)
        if shortest <= estimate <= longest:
            return min(longest, estimate + trip)
        return longest


_rng = random.Random()
