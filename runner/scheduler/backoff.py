"""How long to wait before retrying: exponential backoff with full jitter, honouring Retry-After.

Full jitter (a uniform draw between 0 and the exponential ceiling) is what keeps many takes
that failed at the same moment from retrying at the same moment again; the AWS architecture
note "Exponential Backoff And Jitter" shows it spreads load best. When the gateway says how
long to wait (``Retry-After`` on a 429), waiting less would only earn another 429, so that
value is a floor, itself capped so that a silly header cannot park a run for a day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delays for retry number ``attempt`` (0 for the first retry).

    ``base`` is the ceiling of the first delay, doubled per attempt up to ``cap``;
    ``retry_after_cap`` bounds how long a gateway's ``Retry-After`` can make us wait;
    ``max_attempts`` is how many times a single request (creation, query, upload, download)
    is retried for transient errors before the take itself is marked as failed.
    """

    base: float = 0.5
    cap: float = 30.0
    retry_after_cap: float = 300.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative")

    def ceiling(self, attempt: int) -> float:
        """The largest delay retry ``attempt`` may get (before Retry-After)."""
        return float(min(self.cap, self.base * 2.0 ** min(attempt, 62)))

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """A random delay in [0, ceiling(attempt)], at least ``retry_after`` (capped)."""
        draw = (rng or _rng).uniform(0.0, self.ceiling(attempt))
        if retry_after is not None and retry_after > 0:
            draw = max(draw, min(retry_after, self.retry_after_cap))
        return draw


_rng = random.Random()
