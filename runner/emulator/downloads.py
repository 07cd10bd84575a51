"""Serving stored bytes like a CDN: ranges, exact lengths, and (on demand) bad behaviour.

A client resumes an interrupted download with ``Range: bytes=N-``, so the emulator answers
206 with ``Content-Range``; ``Content-Length`` is always the length promised, so a
truncated transfer (the connection cut before that many bytes) is detectable, as it is on a
real CDN. ``download_rate`` throttles the transfer to exercise deadlines and timeouts.
"""

from __future__ import annotations

import asyncio
import re

import structlog
from aiohttp import web

from runner.emulator.faults import abort_connection

log = structlog.get_logger()
CHUNK = 1024 * 1024  # unthrottled writes: large, so the loop is not the transfer's limit
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) inclusive for a satisfiable single range; None to send everything;
    ``"unsatisfiable"`` when the range lies outside the content."""
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if match is None:
        return None  # multiple or malformed ranges: RFC 9110 lets us send the whole thing
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:
        suffix = int(last_text)
        if suffix == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


async def serve_bytes(
    request: web.Request,
    data: bytes,
    content_type: str,
    *,
    rate: float | None = None,
    truncate: bool = False,
) -> web.StreamResponse:
    """Answer ``request`` with ``data`` (or the asked range of it).

    With ``truncate`` the connection is cut after about half of the promised bytes; with
    ``rate`` the body is paced to that many bytes per second.
    """
    size = len(data)
    wanted = parse_range(request.headers.get("Range"), size)
    if wanted == "unsatisfiable":
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type,
               "Cache-Control": "private, max-age=0"}
    if isinstance(wanted, tuple):
        first, last = wanted
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    else:
        first, last, status = 0, size - 1, 200
    body = memoryview(data)[first : last + 1]
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    limit = len(body) // 2 if truncate else len(body)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    # A throttled transfer goes in tenths of a second's worth, so the pace shows early.
    step = CHUNK if not rate else int(min(CHUNK, max(1024, rate / 10)))
    try:
        while sent < limit:
            chunk = body[sent : min(limit, sent + step)]
            await response.write(chunk)  # a view of the stored bytes, not a copy
            sent += len(chunk)
            if rate:
                # Pace against the start time: the average rate holds whatever the chunking.
                delay = started + sent / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        if truncate:
            abort_connection(request)
            return response
        await response.write_eof()
    except ConnectionError:
        # The client went away mid-transfer (it gave up, or it is being torture-tested):
        # nothing to answer, and not the server's error.
        log.debug("emulator_download_abandoned", path=request.path, sent=sent)
    return response
