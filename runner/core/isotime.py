"""ISO 8601 UTC text for epoch times, without a datetime per call.

Sidecars and ``status`` format a few times per take (60,000 times for 20,000 takes) and the
run log stamps every event: a datetime per call was a tenth of ``status`` and a fifth of a log
event. The text up to the minute is memoised (a run's events fall within the same minutes);
the result is the same, to the character, as datetime's own text.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SECONDS = tuple(f"{second:02d}" for second in range(60))
_minutes: dict[int, str] = {}


def _minute_head(minute: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of the minute ``minute`` minutes after the epoch (memoised)."""
    head = _minutes.get(minute)
    if head is None:
        if len(_minutes) > 100_000:
            _minutes.clear()
        day, rest = divmod(minute, 1440)
        date = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        head = _minutes[minute] = f"{date}T{rest // 60:02d}:{rest % 60:02d}:"
    return head


def iso_time(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2026-11-24T09:30:00Z``), None stays None.

    The text of ``datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")``; seconds
    are rounded the way ``datetime.fromtimestamp`` rounds (to the microsecond, half to even).
    """
    if epoch is None:
        return None
    seconds = math.floor(epoch)
    if round((epoch - seconds) * 1_000_000) >= 1_000_000:
        seconds += 1
    minute, second = divmod(seconds, 60)
    return _minute_head(minute) + _SECONDS[second] + "Z"


def iso_timestamp(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as structlog's ISO UTC stamp writes it: the text
    of ``datetime.now(timezone.utc).isoformat()`` with ``+00:00`` as ``Z`` (microseconds, and
    none when they are zero)."""
    seconds, micro = divmod(ns // 1000, 1_000_000)
    minute, second = divmod(seconds, 60)
    head = _minute_head(minute) + _SECONDS[second]
    return f"{head}.{micro:06d}Z" if micro else head + "Z"


def epoch_from_iso(text: Any) -> float | None:
    """The epoch seconds of an ISO 8601 text such as :func:`iso_time` writes (a sidecar's
    ``submitted``, ``completed``, ``downloaded``); None when absent or unreadable, since a
    file read back after a crash or an edit may hold anything."""
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
