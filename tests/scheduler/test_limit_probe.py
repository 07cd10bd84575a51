"""A 429 that answers a +1 probe steps the limit back by one and makes probes rarer."""

from __future__ import annotations

from runner.scheduler.limits import AimdLimiter


def _succeed(limiter: AimdLimiter, times: int) -> None:
    for _ in range(times):
        limiter.on_success()


def test_a_refused_probe_steps_back_to_the_limit_that_worked() -> None:
    limiter = AimdLimiter(16, window=4)
    limiter.on_rate_limited(limiter.epoch)  # the first 429s: halve, 16 -> 8
    assert limiter.limit == 8
    _succeed(limiter, 4)
    assert limiter.limit == 9  # a probe
    limiter.on_rate_limited(limiter.epoch)  # the cap is 8: back to 8, not 4
    assert limiter.limit == 8
    _succeed(limiter, 4)
    assert limiter.limit == 8  # the next probe waits twice as long
    _succeed(limiter, 4)
    assert limiter.limit == 9


def test_429s_without_a_probe_still_halve() -> None:
    limiter = AimdLimiter(16, window=4)
    limiter.on_rate_limited(limiter.epoch)
    _succeed(limiter, 4)
    limiter.on_rate_limited(limiter.epoch)  # answers the probe: 9 -> 8
    limiter.on_rate_limited(limiter.epoch)  # the gateway really shrank: 8 -> 4
    assert limiter.limit == 4
