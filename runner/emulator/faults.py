"""Fault injection: the misbehaviour a real gateway shows overnight, on demand and seeded.

Every decision draws from one ``random.Random`` seeded by ``settings.seed``, so a failing
torture test can be replayed. The faults are the ones a client must survive: HTTP errors
(429/500/502/503), connections reset with no answer (for a creation, the task may or may not
have been created first), and downloads cut short or throttled.
"""

from __future__ import annotations

import contextlib
import math
import random
import socket
import struct

from aiohttp import web

from runner.emulator.responses import ApiError
from runner.emulator.settings import EmulatorSettings

_MESSAGES = {
    "429": "Too many requests; slow down and retry later.",
    "500": "Internal server error; retry later.",
    "502": "The upstream model service failed; retry later.",
    "503": "The service is temporarily unavailable; retry later.",
}


class Faults:
    """Seeded random decisions about which requests misbehave, and how."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random sequence when the settings name a different seed."""
        if seed != self.seed:
            self.seed = seed
            self.rng = random.Random(seed)

    def chance(self, rate: float) -> bool:
        """True with probability ``rate`` (never draws when the rate is 0)."""
        return rate > 0 and self.rng.random() < rate

    def injected_error(self, settings: EmulatorSettings) -> ApiError | None:
        """One of the configured HTTP errors for this request, or None."""
        if not settings.error_rates:
            return None
        draw = self.rng.random()
        for status, rate in sorted(settings.error_rates.items()):
            if draw < rate:
                headers = {}
                if status == "429":
                    headers["Retry-After"] = retry_after_header(settings, 1.0)
                return ApiError(int(status), _MESSAGES[status], headers=headers)
            draw -= rate
        return None


def retry_after_header(settings: EmulatorSettings, seconds: float) -> str:
    """The ``Retry-After`` value: the configured one, else whole seconds (at least 1)."""
    if settings.retry_after is not None:
        value = settings.retry_after
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return str(max(1, math.ceil(seconds)))


def abort_connection(request: web.Request) -> None:
    """Reset the client's connection with no answer (RST, not a polite close)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
