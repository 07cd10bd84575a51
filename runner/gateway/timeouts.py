"""Client time limits as one frozen, self-checking value (a setting, never a constant).

Each limit answers a different question, so each is separate:

* ``connect``: how long to wait for a TCP/TLS connection (nothing was sent yet);
* ``request``: the whole of a JSON exchange (create, query), answer included;
* ``upload``: the whole of an upload to the file service (images up to 10 MB);
* ``download_read``: the longest a result download may go without receiving a byte. A
  download has no total limit (a 2 GiB result on a slow line is legitimate), only this stall
  limit, which is what turns a stuck transfer into a retryable error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import aiohttp


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Seconds; every value must be a positive finite number."""

    connect: float = 15.0
    request: float = 60.0
    upload: float = 300.0
    download_read: float = 60.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"timeouts.{item.name} must be a positive number of seconds, got {value!r}"
                )

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

    def for_download(self) -> aiohttp.ClientTimeout:
        """No total limit; a stall longer than ``download_read`` fails the read."""
        return aiohttp.ClientTimeout(
            total=None,
            connect=self.connect,
            sock_connect=self.connect,
            sock_read=self.download_read,
        )
