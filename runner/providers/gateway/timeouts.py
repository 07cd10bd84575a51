"""Client time limits as one frozen, self-checking value (a setting, never a constant).

Each limit answers a different question, so each is separate:

* ``connect``: how long to wait for a TCP/TLS connection (nothing was sent yet);
* ``request``: the whole of a JSON exchange (create, query), answer included;
* ``upload``: the whole of an upload to the file service (images up to 10 MB);
* ``download_read``: the longest a result download may go without receiving a byte;
* ``download_total``: the longest one download call may take, whatever arrives (generous by
  default: a large result on a slow line is legitimate, a transfer that never ends is not);
* ``min_download_rate``: bytes per second a download must average over each
  ``download_read`` window (0: no minimum). Each byte resets the read timeout, so without it
  a server sending one byte a second holds a run for ever.

Breaking any of them is a retryable download error: the link is kept, a retry resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import aiohttp

from runner.providers.download import Pace

DEFAULT_DOWNLOAD_TOTAL = 2 * 3600.0
DEFAULT_MIN_DOWNLOAD_RATE = 1024.0


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Seconds; every value must be a positive finite number."""

    connect: float = 15.0
    request: float = 60.0
    upload: float = 300.0
    download_read: float = 60.0
    download_total: float = DEFAULT_DOWNLOAD_TOTAL
    min_download_rate: float = DEFAULT_MIN_DOWNLOAD_RATE  # bytes per second; 0: none

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            rate = item.name == "min_download_rate"
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and not rate)
            ):
                what = "0 or more bytes per second" if rate else "a positive number of seconds"
                raise ValueError(f"timeouts.{item.name} must be {what}, got {value!r}")

    def for_request(self) -> aiohttp.ClientTimeout:
        """Limits of one JSON exchange."""
        return aiohttp.ClientTimeout(
            total=self.request, connect=self.connect, sock_connect=self.connect
        )

    def for_upload(self) -> aiohttp.ClientTimeout:
        """Limits of one upload."""
        return aiohttp.ClientTimeout(
            total=self.upload, connect=self.connect, sock_connect=self.connect
        )

    def download_pace(self) -> Pace:
        """The bounds of a download besides its read timeout (see the module docstring)."""
        return Pace(deadline=self.download_total, min_rate=self.min_download_rate,
                    window=self.download_read)

    def for_download(self) -> aiohttp.ClientTimeout:
        """A stall longer than ``download_read`` fails the read (the whole transfer is bounded
        by :meth:`download_pace`, which also covers a trickle)."""
        return aiohttp.ClientTimeout(
            total=None,
            connect=self.connect,
            sock_connect=self.connect,
            sock_read=self.download_read,
        )
