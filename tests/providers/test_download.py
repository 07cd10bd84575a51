"""Result downloads against real loopback servers: resume, restart, caps, expiry, stalls."""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from runner.core.errors import DownloadError, DownloadRefused, LinkExpired
from runner.providers.download import finalize_download
from runner.providers.gateway.client import ClientTimeouts, GatewayClient

KEY = "sk-shotrun-DOWNLOAD-0b7e41"
DATA = bytes(range(256)) * 4096 * 3  # 3 MiB: several chunks
SHA = hashlib.sha256(DATA).hexdigest()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def fetch(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Any]:
    """``await fetch(handler, **client_kw)`` -> (client, url, part) with the handler at /v.mp4."""
    clients: list[GatewayClient] = []

    async def make(handler: Handler, **kw: Any) -> tuple[GatewayClient, str, Path]:
        app = web.Application()
        app.router.add_get("/v.mp4", handler)
        server: TestServer = await aiohttp_server(app)
        kw.setdefault("timeouts", ClientTimeouts(download_read=5.0))
        client = GatewayClient(str(server.make_url("/")), None, KEY, **kw)
        clients.append(client)
        return client, str(server.make_url("/v.mp4")), tmp_path / "take-1.mp4.part"

    yield make
    for client in clients:
        await client.close()


def _ranged(data: bytes, requests: list[str | None], *, honour_range: bool = True) -> Handler:
    """Serve ``data``, honouring ``Range: bytes=N-``; record each request's Range header."""

    async def handler(request: web.Request) -> web.Response:
        wanted = request.headers.get("Range")
        requests.append(wanted)
        match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
        if match and honour_range:
            start = int(match.group(1))
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            return web.Response(status=206, body=data[start:], headers={
                "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        return web.Response(body=data)

    return handler


async def test_download_saves_hashes_and_sizes(fetch: Any) -> None:
    seen: list[str | None] = []
    client, url, part = await fetch(_ranged(DATA, seen))
    saved = await client.download(url, part)
    assert (saved.path, saved.size, saved.sha256) == (part, len(DATA), SHA)
    assert part.read_bytes() == DATA
    assert seen == [None]


async def test_resume_after_a_mid_body_drop(fetch: Any) -> None:
    seen: list[str | None] = []
    whole = _ranged(DATA, seen)

    async def flaky(request: web.Request) -> web.StreamResponse:
        if seen:
            return await whole(request)
        seen.append(request.headers.get("Range"))
        resp = web.StreamResponse(headers={"Content-Length": str(len(DATA))})
        await resp.prepare(request)
        await resp.write(DATA[: len(DATA) // 2])
        assert request.transport is not None
        request.transport.close()  # sends what was written, then the end: the body is short
        return resp

    client, url, part = await fetch(flaky)
    with pytest.raises(DownloadError, match="was cut off mid-way") as info:
        await client.download(url, part)
    assert not isinstance(info.value, LinkExpired | DownloadRefused)
    kept = part.stat().st_size
    assert kept == len(DATA) // 2  # everything that arrived is kept, to resume from
    assert part.read_bytes() == DATA[:kept]
    saved = await client.download(url, part)
    assert (saved.size, saved.sha256) == (len(DATA), SHA)
    assert part.read_bytes() == DATA
    assert seen == [None, f"bytes={kept}-"]


async def test_server_ignoring_range_restarts_from_zero(fetch: Any) -> None:
    seen: list[str | None] = []
    client, url, part = await fetch(_ranged(DATA, seen, honour_range=False))
    part.write_bytes(b"stale bytes from another attempt")
    saved = await client.download(url, part)
    assert (saved.size, saved.sha256) == (len(DATA), SHA)
    assert part.read_bytes() == DATA
    assert seen == ["bytes=32-"]


async def test_partial_answer_at_the_wrong_offset_restarts(fetch: Any) -> None:
    seen: list[str | None] = []

    async def wrong(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Range"))
        if request.headers.get("Range"):
            return web.Response(status=206, body=DATA, headers={
                "Content-Range": f"bytes 0-{len(DATA) - 1}/{len(DATA)}"})
        return web.Response(body=DATA)

    client, url, part = await fetch(wrong)
    part.write_bytes(DATA[:1000])
    saved = await client.download(url, part)
    assert saved.sha256 == SHA and part.read_bytes() == DATA
    assert seen == ["bytes=1000-", None]


async def test_an_already_complete_part_is_accepted_on_416(fetch: Any) -> None:
    seen: list[str | None] = []
    client, url, part = await fetch(_ranged(DATA, seen))
    part.write_bytes(DATA)
    saved = await client.download(url, part)
    assert (saved.size, saved.sha256) == (len(DATA), SHA)
    assert seen == [f"bytes={len(DATA)}-"]


async def test_a_part_longer_than_the_result_restarts(fetch: Any) -> None:
    seen: list[str | None] = []
    client, url, part = await fetch(_ranged(DATA, seen))
    part.write_bytes(DATA + b"extra")
    saved = await client.download(url, part)
    assert saved.sha256 == SHA and part.read_bytes() == DATA
    assert seen == [f"bytes={len(DATA) + 5}-", None]


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "streamed"])
async def test_results_over_the_cap_are_refused(fetch: Any, chunked: bool) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(DATA)
        await resp.prepare(request)
        for i in range(0, len(DATA), 256 * 1024):
            await resp.write(DATA[i : i + 256 * 1024])
        await resp.write_eof()
        return resp

    client, url, part = await fetch(big, max_result_bytes=1024 * 1024)
    with pytest.raises(DownloadRefused, match=r"larger than the cap of 1\.0 MiB"):
        await client.download(url, part)
    assert not part.exists()


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_expired_links(fetch: Any, status: int) -> None:
    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=status, text="link expired")

    client, url, part = await fetch(gone)
    with pytest.raises(LinkExpired, match=f"HTTP {status}"):
        await client.download(url + "?sig=TOKEN123", part)


async def test_server_errors_are_retryable_download_errors(fetch: Any) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503)

    client, url, part = await fetch(broken)
    with pytest.raises(DownloadError, match="HTTP 503") as info:
        await client.download(url, part)
    assert type(info.value) is DownloadError


async def test_a_stalled_read_fails_and_the_next_call_resumes(fetch: Any) -> None:
    release = asyncio.Event()
    seen: list[str | None] = []
    whole = _ranged(DATA, seen)

    async def stall(request: web.Request) -> web.StreamResponse:
        if seen:
            return await whole(request)
        seen.append(None)
        resp = web.StreamResponse(headers={"Content-Length": str(len(DATA))})
        await resp.prepare(request)
        await resp.write(DATA[:100_000])
        await release.wait()
        return resp

    client, url, part = await fetch(stall, timeouts=ClientTimeouts(download_read=0.2))
    try:
        with pytest.raises(DownloadError, match="stalled"):
            await client.download(url, part)
    finally:
        release.set()
    assert part.read_bytes() == DATA[:100_000]
    assert (await client.download(url, part)).sha256 == SHA
    assert seen == [None, "bytes=100000-"]


async def test_only_http_links_are_followed(fetch: Any) -> None:
    client, _url, part = await fetch(_ranged(DATA, []))
    for bad in ("file:///etc/passwd", "ftp://example.com/v.mp4", "not a url"):
        with pytest.raises(DownloadRefused, match=r"http or https|URL"):
            await client.download(bad, part)


async def test_redirects_are_limited(fetch: Any) -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/v.mp4")

    client, url, part = await fetch(loop)
    with pytest.raises(DownloadRefused, match="redirect"):
        await client.download(url, part)


async def test_signed_link_tokens_stay_out_of_messages(fetch: Any) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    client, url, part = await fetch(broken)
    with pytest.raises(DownloadError) as info:
        await client.download(url + "?token=SIGNED-SECRET", part)
    assert "SIGNED-SECRET" not in str(info.value)


async def test_unwritable_destination_is_a_clear_download_error(fetch: Any) -> None:
    client, url, part = await fetch(_ranged(DATA, []))
    with pytest.raises(DownloadError, match=r"cannot write .*No such file"):
        await client.download(url, part.parent / "missing" / "x.part")


def test_finalize_download_moves_the_part_into_place(tmp_path: Path) -> None:
    part = tmp_path / "take-1.mp4.part"
    part.write_bytes(DATA)
    finalize_download(part, tmp_path / "take-1.mp4")
    assert not part.exists()
    assert (tmp_path / "take-1.mp4").read_bytes() == DATA


async def test_partial_answer_to_a_plain_request_is_accepted_when_whole(fetch: Any) -> None:
    async def partial(request: web.Request) -> web.Response:
        return web.Response(status=206, body=DATA, headers={
            "Content-Range": f"bytes 0-{len(DATA) - 1}/{len(DATA)}"})

    client, url, part = await fetch(partial)
    assert (await client.download(url, part)).sha256 == SHA


async def test_encoded_answers_are_saved_as_sent(fetch: Any) -> None:
    async def gzipped(request: web.Request) -> web.Response:
        resp = web.Response(body=DATA)
        resp.enable_compression(web.ContentCoding.gzip)
        return resp

    client, url, part = await fetch(gzipped)
    saved = await client.download(url, part)
    assert saved.size == part.stat().st_size < len(DATA)  # raw bytes: verify will judge them


async def test_a_full_disk_is_a_clear_error_and_keeps_what_was_written(fetch: Any) -> None:
    """RLIMIT_FSIZE makes writes past 1 MiB fail as a full disk would (EFBIG ~ ENOSPC)."""
    resource = pytest.importorskip("resource")
    client, url, part = await fetch(_ranged(DATA, []))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, hard))
    try:
        with pytest.raises(DownloadError, match=r"cannot write .*\.part: File too large"):
            await client.download(url, part)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert part.read_bytes() == DATA[: part.stat().st_size]
    saved = await client.download(url, part)  # space again: the next call finishes the job
    assert saved.sha256 == SHA


async def test_early_writeback_keeps_content_and_hash(
    fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.providers.spool

    monkeypatch.setattr(runner.providers.spool, "WRITEBACK_STEP", 1024 * 1024)  # several kicks
    client, url, part = await fetch(_ranged(DATA, []))
    part.write_bytes(DATA[:123_457])  # and a resumed, unaligned start
    saved = await client.download(url, part)
    assert saved.sha256 == SHA and part.read_bytes() == DATA


async def test_a_chunked_answer_in_small_pieces_arrives_whole(fetch: Any) -> None:
    """HTTP chunk boundaries (empty end-of-chunk markers) and odd piece sizes change nothing."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        step = 7919
        for i in range(0, len(DATA), step):
            await resp.write(DATA[i : i + step])
        await resp.write_eof()
        return resp

    client, url, part = await fetch(trickle)
    saved = await client.download(url, part)
    assert (saved.size, saved.sha256) == (len(DATA), SHA)
    assert part.read_bytes() == DATA


async def test_the_emulator_serves_a_result_whole_and_resumable(tmp_path: Path) -> None:
    """The emulator's large unthrottled writes keep ranges and lengths exact."""
    from aiohttp.test_utils import TestServer as Server

    from runner.emulator.downloads import serve_bytes

    data = bytes(range(256)) * 4096 * 5 + b"tail"  # 5 MiB and a bit: several 1 MiB writes

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_bytes(request, data, "video/mp4")

    app = web.Application()
    app.router.add_get("/v.mp4", handler)
    async with Server(app) as server, GatewayClient(str(server.make_url("/")), None, KEY) as c:
        part = tmp_path / "v.mp4.part"
        part.write_bytes(data[:1_234_567])
        saved = await c.download(str(server.make_url("/v.mp4")), part)
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert part.read_bytes() == data


async def test_larger_socket_reads_last_only_as_long_as_the_body(aiohttp_server: Any) -> None:
    """The pooled connection reads with asyncio's usual size again for the API calls after."""
    import aiohttp

    from runner.providers.download import SOCKET_READ, _larger_reads

    app = web.Application()
    app.router.add_get("/v.mp4", _ranged(DATA, []))
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/v.mp4")) as resp:
        assert resp.connection is not None and resp.connection.transport is not None
        transport = resp.connection.transport
        usual = transport.max_size  # type: ignore[attr-defined]
        with _larger_reads(resp):
            assert transport.max_size == SOCKET_READ  # type: ignore[attr-defined]
            assert await resp.read() == DATA
        assert transport.max_size == usual < SOCKET_READ  # type: ignore[attr-defined]


def _trickle(data: bytes, seen: list[str | None], *, pause: float,
             trickling: Callable[[], bool]) -> Handler:
    """Serve ``data`` whole once ``trickling()`` is false; until then announce it all and
    send it a byte per ``pause`` seconds from where the Range asks (a server that never
    goes silent long enough for the read timeout, yet never finishes)."""
    whole = _ranged(data, seen)

    async def handler(request: web.Request) -> web.StreamResponse:
        if not trickling():
            return await whole(request)
        seen.append(request.headers.get("Range"))
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range") or "")
        start = int(match.group(1)) if match else 0
        headers = {"Content-Length": str(len(data) - start)}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        resp = web.StreamResponse(status=206 if start else 200, headers=headers)
        await resp.prepare(request)
        for offset in range(start, len(data)):
            await resp.write(data[offset:offset + 1])
            await asyncio.sleep(pause)  # the server's own pace: the misbehaviour under test
        return resp

    return handler


async def test_a_trickle_below_the_minimum_rate_is_a_retryable_error_that_resumes(
        fetch: Any) -> None:
    seen: list[str | None] = []
    slow = [True]
    handler = _trickle(DATA, seen, pause=0.02, trickling=lambda: slow[0])
    client, url, part = await fetch(handler, timeouts=ClientTimeouts(
        download_read=0.3, min_download_rate=4096))
    with pytest.raises(DownloadError, match="minimum rate of 4096 bytes/s") as caught:
        await client.download(url, part)
    assert not isinstance(caught.value, DownloadRefused)  # retryable: the link is kept
    kept = part.stat().st_size
    assert 0 < kept < 100 and part.read_bytes() == DATA[:kept]
    slow[0] = False
    assert (await client.download(url, part)).sha256 == SHA
    assert seen[-1] == f"bytes={kept}-"


async def test_a_transfer_over_its_deadline_is_a_retryable_error_that_resumes(
        fetch: Any) -> None:
    seen: list[str | None] = []
    slow = [True]
    handler = _trickle(DATA, seen, pause=0.01, trickling=lambda: slow[0])
    client, url, part = await fetch(handler, timeouts=ClientTimeouts(
        download_read=5.0, download_total=0.5, min_download_rate=0))
    with pytest.raises(DownloadError, match=r"deadline of 0\.5 s") as caught:
        await client.download(url, part)
    assert not isinstance(caught.value, DownloadRefused)
    kept = part.stat().st_size
    assert part.read_bytes() == DATA[:kept]
    slow[0] = False
    assert (await client.download(url, part)).sha256 == SHA


@pytest.mark.parametrize("bad", [{"download_total": 0}, {"download_total": float("inf")},
                                 {"min_download_rate": -1}, {"min_download_rate": True}])
def test_nonsense_download_bounds_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ClientTimeouts(**bad)


async def test_a_link_kept_redacted_is_downloaded_by_the_real_link_the_client_read(
        fetch: Any) -> None:
    """The store keeps result links redacted (a provider may put the key in them): the
    client downloads by the real link it read from the task, and calls a redacted link it
    never read expired, so the caller asks the task for it again."""
    from runner.core.redact import REDACTED, redact
    from runner.wire.protocol import TaskState

    seen: list[str] = []

    async def needs_key(request: web.Request) -> web.StreamResponse:
        seen.append(request.query.get("key", ""))
        if request.query.get("key") != KEY:
            return web.Response(status=403)
        return web.Response(body=DATA)

    client, url, part = await fetch(needs_key)
    real = f"{url}?key={KEY}"
    stored = redact(real)
    assert REDACTED in stored and KEY not in stored
    with pytest.raises(LinkExpired, match="asked for it again"):
        await client.download(stored, part)
    assert seen == []  # a redacted link is never sent
    client.remember_links(TaskState("t1", "completed", results=(real,)))
    assert (await client.download(stored, part)).sha256 == SHA
    assert seen == [KEY]
