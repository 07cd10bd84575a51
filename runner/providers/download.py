"""Saving a result video: streamed to a ``.part`` file, resumable, hashed, size-capped, fsynced.

Result links live 24 hours and overnight connections break, so a download must survive being
cut anywhere and carry on from where it stopped:

* the body is streamed to ``<dest>.part`` and hashed (SHA-256) on the way, by two threads that
  work while the loop receives (:mod:`runner.providers.spool`); when a ``.part`` already exists, its
  bytes are hashed first and the rest is asked for
  with ``Range: bytes=N-``. A ``206`` must start exactly at ``N``; a ``200`` means the server
  ignores ranges, so the file restarts from zero; a ``416`` whose total equals ``N`` means the
  ``.part`` was already complete;
* the final length must equal ``Content-Length`` (or the ``Content-Range`` total);
* a result larger than the cap is refused from the headers and, if the server does not
  announce a length, while streaming;
* the file is fsynced before :class:`~runner.wire.protocol.Downloaded` is returned; the caller
  records the hash and then calls :func:`finalize_download` for the atomic rename.

Every transfer is bounded (:class:`Pace`): a stall longer than the read timeout, a whole
transfer longer than its deadline, or a rate below the minimum over a read-timeout window
ends it. A server that sends one byte a second would otherwise hold a run for ever: each byte
resets the read timeout.

Errors: ``403/404/410`` -> :class:`~runner.core.errors.LinkExpired` (query the task for a fresh
link); a cut connection, a stall, a deadline or a rate broken, a 5xx ->
:class:`DownloadError` (retry: the next call resumes, the link is kept); too large / not
http(s) -> :class:`DownloadRefused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog
from yarl import URL

from runner.core.errors import DownloadError, DownloadRefused, LinkExpired
from runner.core.fsutil import replace_durably
from runner.providers.spool import Spool
from runner.wire.protocol import Downloaded
from runner.wire.translate import describe
from runner.wire.urls import checked_url, safe_url_text

log = structlog.get_logger()

BATCH_BYTES = 1024 * 1024  # received bytes handed to the writer and hasher threads at once
READ_BUFSIZE = 4 * 1024 * 1024  # aiohttp buffers up to twice this before pausing the socket
SOCKET_READ = 1024 * 1024  # bytes per recv() while a body streams (asyncio's default: 256 KiB)
_EXPIRED = frozenset({403, 404, 410})
_PRIVATE_HEADERS = frozenset({"set-cookie", "set-cookie2"})  # never kept with a result
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to write the body of one answer: from which offset, and how long the whole is."""

    offset: int
    total: int | None


@dataclass(frozen=True, slots=True)
class Pace:
    """The bounds of one transfer besides the read timeout (seconds, bytes per second).

    ``deadline``: the longest one call may take, headers to last byte (None: no limit).
    ``min_rate``: the slowest average rate accepted over any ``window`` seconds (0: none);
    a body that trickles in never trips the read timeout, which only counts silence.
    """

    deadline: float | None = None
    min_rate: float = 0.0
    window: float = 60.0


class _TooSlow(Exception):
    """The body arrives more slowly than :attr:`Pace.min_rate`."""

    def __init__(self, rate: float, window: float) -> None:
        super().__init__(f"{rate:.0f} bytes/s over {window:g} s")
        self.rate = rate
        self.window = window


class _RateWatch:
    """Measures the rate of a body over successive windows of :attr:`Pace.window` seconds."""

    __slots__ = ("_bytes", "_pace", "_since")

    def __init__(self, pace: Pace) -> None:
        self._pace = pace
        self._since = time.monotonic()
        self._bytes = 0

    def saw(self, size: int) -> None:
        """``size`` more bytes arrived; raise _TooSlow when a window ends below the rate."""
        if not self._pace.min_rate:
            return
        self._bytes += size
        elapsed = time.monotonic() - self._since
        if elapsed < self._pace.window:
            return
        rate = self._bytes / elapsed
        if rate < self._pace.min_rate:
            raise _TooSlow(rate, elapsed)
        self._since += elapsed
        self._bytes = 0


class _Restart(Exception):
    """The server cannot continue the ``.part``: start again from zero with a new request."""


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size //= 1024
    raise AssertionError("unreachable")


def _too_large(part: Path, shown: str, size: int, cap: int) -> DownloadRefused:
    with contextlib.suppress(OSError):
        part.unlink()
    return DownloadRefused(
        f"result {shown} is {_human(size)} or more, larger than the cap of {_human(cap)} "
        "(raise the result size limit to accept it)"
    )


def _plan(resp: aiohttp.ClientResponse, offset: int, shown: str) -> _Plan:
    """Decide, from the status and headers, where this answer's body goes."""
    status = resp.status
    if status in _EXPIRED:
        raise LinkExpired(f"result link {shown} answered HTTP {status}: it has expired")
    if status == 416 and offset:
        match = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == offset:
            return _Plan(offset=offset, total=offset)  # the .part is already whole
        raise _Restart
    if status == 200:
        return _Plan(offset=0, total=resp.content_length)
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if not match or int(match.group(1)) != offset:
            raise _Restart
        end = int(match.group(2))
        total = int(match.group(3)) if match.group(3) != "*" else end + 1
        if end + 1 != total:
            raise DownloadError(f"result {shown}: partial answer ends at {end} of {total} bytes")
        return _Plan(offset=offset, total=total)
    raise DownloadError(f"result {shown} answered HTTP {status}, retry later")


def _hash_prefix(part: Path, size: int, digest: hashlib._Hash) -> None:
    """Feed the first ``size`` bytes of ``part`` (kept from an earlier attempt) to ``digest``."""
    left = size
    with part.open("rb") as f:
        while left:
            block = f.read(min(BATCH_BYTES, left))
            if not block:
                raise DownloadError(f"{part} shrank while being resumed")
            digest.update(block)
            left -= len(block)


@contextlib.contextmanager
def _larger_reads(resp: aiohttp.ClientResponse) -> Iterator[None]:
    """Let the event loop read up to :data:`SOCKET_READ` per ``recv`` while the body streams.

    Four times fewer reads, parser calls and buffers for the loop to handle: about a tenth
    less CPU per GiB. ``max_size`` is how CPython's selector transport sizes its reads; any
    other transport (uvloop, a closed connection) is left alone. The pooled connection gets
    its old size back afterwards, for the small API answers that follow on it.
    """
    connection = resp.connection
    transport = connection.transport if connection is not None else None
    previous = getattr(transport, "max_size", None)
    if transport is None or not isinstance(previous, int) or previous >= SOCKET_READ:
        yield
        return
    transport.max_size = SOCKET_READ  # type: ignore[attr-defined]
    try:
        yield
    finally:
        transport.max_size = previous  # type: ignore[attr-defined]


def _salvage(content: aiohttp.StreamReader) -> bytes:
    """The bytes aiohttp had already received when the connection broke.

    aiohttp refuses to hand out buffered data once the stream has an error; keeping it
    means a retry resumes from exactly what arrived (a line that drops every few MiB still
    makes progress). This reads a private method, so any surprise yields nothing.
    """
    try:
        data = content._read_nowait(-1)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


async def _receive(
    resp: aiohttp.ClientResponse, part: Path, plan: _Plan, *, max_bytes: int, shown: str,
    pace: Pace,
) -> Downloaded:
    """Stream the body into ``part`` from ``plan.offset``, hashing as it goes.

    The loop only receives: buffers are taken as aiohttp hands them over (no joining copy),
    checked against the cap and the announced length, and passed in batches of about
    :data:`BATCH_BYTES` to a :class:`~runner.providers.spool.Spool`, whose threads write and hash
    them
    while the next batch arrives. Whatever arrived before a failure (a stall, a cut) is
    still written, so the next attempt resumes from exactly there.
    """
    if plan.total is not None and plan.total > max_bytes:
        raise _too_large(part, shown, plan.total, max_bytes)
    digest = hashlib.sha256()
    if plan.offset:
        await asyncio.to_thread(_hash_prefix, part, plan.offset, digest)
    size = plan.offset
    batch: list[bytes] = []
    batched = 0
    watch = _RateWatch(pace)

    def take(chunk: bytes) -> None:
        nonlocal size, batched
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(part, shown, size, max_bytes)
        if plan.total is not None and size > plan.total:
            raise DownloadError(f"result {shown} sent more than the {plan.total} bytes announced")
        batch.append(chunk)
        batched += len(chunk)

    received = False
    async with Spool.open(part, plan.offset, digest) as spool:
        try:
            with _larger_reads(resp):
                async for chunk, _end_of_http_chunk in resp.content.iter_chunks():
                    if chunk:
                        take(chunk)
                        watch.saw(len(chunk))
                        if batched >= BATCH_BYTES:
                            # Emptied first: a batch handed over must not be handed over
                            # again by the ``finally`` below if this await is interrupted.
                            full, batch, batched = batch, [], 0
                            await spool.submit(full)
            received = True
        except aiohttp.ClientPayloadError:
            tail = _salvage(resp.content)
            if tail:
                take(tail)
            raise
        finally:
            if not received:
                await spool.submit(batch)  # checked bytes only: also kept after a failure
        last, batch = batch, []
        await spool.finish(last)
    if plan.total is not None and size != plan.total:
        raise DownloadError(f"result {shown} ended at {size} of {plan.total} bytes; retry")
    kept = {name: value for name, value in resp.headers.items()
            if name.lower() not in _PRIVATE_HEADERS}
    return Downloaded(path=part, size=size, sha256=digest.hexdigest(), headers=kept)


async def download_to_part(
    session: aiohttp.ClientSession,
    url: str,
    part: Path,
    *,
    max_bytes: int,
    timeout: aiohttp.ClientTimeout,
    headers: Mapping[str, str] | None = None,
    max_redirects: int = 3,
    pace: Pace | None = None,
) -> Downloaded:
    """Download ``url`` into ``part``, resuming what is there. See the module docstring."""
    pace = pace or Pace()
    try:
        async with asyncio.timeout(pace.deadline) as within:
            return await _download(session, url, part, max_bytes=max_bytes, timeout=timeout,
                                   headers=headers, max_redirects=max_redirects, pace=pace)
    except TimeoutError:
        if not within.expired():
            raise
        shown = safe_url_text(url)
        raise DownloadError(
            f"download of {shown} took longer than its deadline of {pace.deadline:g} s "
            "(--download-timeout); the link is kept and a retry resumes it") from None


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    part: Path,
    *,
    max_bytes: int,
    timeout: aiohttp.ClientTimeout,
    headers: Mapping[str, str] | None,
    max_redirects: int,
    pace: Pace,
) -> Downloaded:
    try:
        target: URL = checked_url(url, what="result link")
    except ValueError as exc:
        raise DownloadRefused(str(exc)) from None
    shown = safe_url_text(target)
    for _attempt in range(2):  # the second pass only after the server refused to resume
        try:
            offset = part.stat().st_size if part.exists() else 0
        except OSError as exc:
            raise DownloadError(f"cannot read {part}: {exc.strerror or exc}") from None
        if offset > max_bytes:
            offset = 0
        request_headers = {**(headers or {}), "Accept-Encoding": "identity"}
        if offset:
            request_headers["Range"] = f"bytes={offset}-"
        log.debug("download_started", url=shown, resume_from=offset)
        try:
            async with session.get(
                target,
                headers=request_headers,
                timeout=timeout,
                allow_redirects=max_redirects > 0,
                max_redirects=max_redirects + 1,
                read_bufsize=READ_BUFSIZE,
                auto_decompress=False,  # save exactly the bytes the lengths count
            ) as resp:
                plan = _plan(resp, offset, shown)
                if offset and plan.offset == 0:
                    log.info("download_restarted", url=shown, reason="server ignored Range")
                return await _receive(resp, part, plan, max_bytes=max_bytes, shown=shown,
                                      pace=pace)
        except _Restart:
            log.info("download_restarted", url=shown, reason="server refused to resume")
            with contextlib.suppress(OSError):
                part.unlink()
        except DownloadError:
            raise
        except _TooSlow as exc:
            raise DownloadError(
                f"download of {shown} was slower than the minimum rate of "
                f"{pace.min_rate:g} bytes/s ({exc}; --min-download-rate); the link is kept "
                "and a retry resumes it") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport(exc, shown) from None
        except OSError as exc:  # local: disk full, permission, directory gone
            raise DownloadError(f"cannot write {part}: {exc.strerror or exc}") from None
    raise DownloadError(f"result {shown}: the server refused to resume twice; retry")


def _transport(exc: BaseException, shown: str) -> DownloadError:
    if isinstance(exc, aiohttp.TooManyRedirects | aiohttp.RedirectClientError):
        return DownloadRefused(f"result {shown}: refused redirect ({describe(exc)})")
    if isinstance(exc, asyncio.TimeoutError):
        what = "stalled (no data within the read timeout)"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        what = "was cut off mid-way"
    else:
        what = "failed"
    return DownloadError(f"download of {shown} {what}; retry resumes it ({describe(exc)})")


def finalize_download(part: Path, dest: Path, *, part_synced: bool = False,
                      sync_dir: bool = True) -> None:
    """Make a finished ``.part`` the output: fsync, ``os.replace``, fsync the directory.

    ``part_synced``: the ``.part`` is a :class:`~runner.wire.protocol.Downloaded`'s, which its
    writer fsynced before returning (:meth:`Spool.finish <runner.providers.spool.Spool.finish>`,
    off the
    event loop); a second flush would only cost the loop a system call. ``sync_dir=False``:
    the caller flushes the folder once for this rename and the sidecar's beside it (see
    :mod:`runner.core.fsutil`), before the take is marked done.
    """
    replace_durably(part, dest, source_synced=part_synced, sync_dir=sync_dir)
