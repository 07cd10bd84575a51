"""What a run does when the gateway has never been reached: retry quickly, then stop.

The gateway client raises :class:`~runner.core.errors.GatewayUnreachable` only while the
configured URL has not answered like the gateway once in this run (see
:mod:`runner.providers.gateway.reach`). Then the patient policy for connection trouble (up to
``backoff.max_attempts`` retries with delays growing to ``backoff.cap``: more than a minute
by default) is the wrong one: a wrong ``api.base_url`` never heals, and a user who mistyped a
port deserves to hear it in seconds, like curl or gh would say it. So:

* a refused connection (or unknown name, no route, connect timeout) is retried at most
  ``min(--retries, QUICK_RETRIES)`` times in the whole run (whichever takes meet it), each
  after a delay of at most ``QUICK_DELAY_CAP`` seconds (a gateway being restarted as the
  run starts gets its chance);
* an answer that is plainly not the gateway's is not retried at all;
* then the run stops submitting and halts (StopReason.UNREACHABLE): the take is "not
  submitted" in the summary and ``new`` in the store (nothing was sent, nothing paid), so
  the next run, with the URL fixed, picks it up; the stop message is the error's one line.

Once the gateway has answered, a refused connection is an ordinary ConnectionFailed and
keeps the patient policy: an overnight run rides out a blip.
"""

from __future__ import annotations

import structlog

from runner.core.errors import GatewayUnreachable
from runner.scheduler.run_context import RunContext, StopReason

log = structlog.get_logger()

QUICK_RETRIES = 2  # at most, and never more than --retries
QUICK_DELAY_CAP = 1.0  # seconds before a quick retry, at most


def quick_retries(ctx: RunContext) -> int:
    """How many times a first contact that failed to connect is tried again."""
    return max(0, min(ctx.settings.retries, QUICK_RETRIES))


def retry_or_stop(ctx: RunContext, exc: GatewayUnreachable) -> float | None:
    """After a GatewayUnreachable: the delay before trying again, or None once the run is
    stopped (StopReason.UNREACHABLE, halted); the caller then leaves its take where it is.

    The failures are counted for the whole run, not per take: each is the same evidence
    about one URL. Counted per take, every queued take had its own quick retries, each
    waiting its turn at the creation pace: 40 takes at 2 creations/s took 20 s to stop.
    """
    ctx.unreached_failures += 1
    failures = ctx.unreached_failures
    if ctx.stop_submitting.is_set() or not exc.retry or failures > quick_retries(ctx):
        ctx.stop(StopReason.UNREACHABLE, exc.message)
        ctx.halt()
        return None
    delay = min(ctx.settings.backoff.delay(failures - 1), QUICK_DELAY_CAP)
    log.info("gateway_unreached_retry", error=exc.message, failures=failures,
             delay=round(delay, 3))
    return delay
