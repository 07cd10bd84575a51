"""Transport failures: was the creation certainly not sent, or is it ambiguous? Redirects, TLS.

Servers here misbehave for real (close the socket, cut an answer, never answer); a port with
nothing listening is a socket bound without ``listen()``, which refuses connections.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from runner.core.errors import (
    AmbiguousSubmission,
    ConnectionFailed,
    GatewayError,
    GatewayUnreachable,
    PermanentGatewayError,
)
from runner.providers.gateway.client import ClientTimeouts, GatewayClient

from .conftest import KEY, TASK, Serve, assert_no_key


async def _drop(request: web.Request) -> web.Response:
    """Read the request, then close the connection without a word."""
    await request.read()
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


async def _cut(request: web.Request) -> web.StreamResponse:
    """Start a 2xx answer, then close the connection half-way through its body."""
    resp = web.StreamResponse(headers={"Content-Length": "500"})
    resp.content_type = "application/json"
    await resp.prepare(request)
    await resp.write(b'{"id": "task-1", ')
    assert request.transport is not None
    request.transport.abort()
    return resp


@pytest.mark.parametrize("handler", [_drop, _cut], ids=["closed-unanswered", "answer-cut"])
async def test_lost_answer_to_a_creation_is_ambiguous_and_to_a_query_is_transient(
    serve: Serve, clients: Any, handler: Any
) -> None:
    server = await serve("POST", "/v1/videos/generations", handler,
                         "GET", "/v1/tasks/{task_id}", handler)
    client = clients(server)
    with pytest.raises(AmbiguousSubmission, match="may or may not have been created") as info:
        await client.create_task({"prompt": "x"})
    assert_no_key(info.value)
    with pytest.raises(ConnectionFailed) as query:
        await client.get_task("task-1")
    assert query.value.maybe_sent is True


async def test_no_answer_in_time_is_ambiguous_for_a_creation(serve: Serve) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response(TASK)

    server = await serve("POST", "/v1/videos/generations", stall,
                         "GET", "/v1/tasks/{task_id}", stall)
    quick = ClientTimeouts(connect=5.0, request=0.2)
    try:
        async with GatewayClient(str(server.make_url("/")), None, KEY, timeouts=quick) as client:
            with pytest.raises(AmbiguousSubmission, match="no answer in time"):
                await client.create_task({"prompt": "x"})
            with pytest.raises(ConnectionFailed, match="no answer in time") as query:
                await client.get_task("task-1")
            assert query.value.maybe_sent is True
    finally:
        release.set()


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def test_refused_connection_is_certainly_not_sent(refusing_port: int, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{refusing_port}"
    async with GatewayClient(base, None, KEY) as client:
        for call in (client.create_task({"prompt": "x"}), client.get_task("task-1"),
                     client.upload_file(_png(tmp_path), "image/png")):
            with pytest.raises(GatewayUnreachable) as info:
                await call
            assert str(info.value) == (f"cannot connect to the gateway at {base} (connection "
                                       "refused): check api.base_url or --base-url")
            assert info.value.maybe_sent is False and isinstance(info.value, ConnectionFailed)
            assert not isinstance(info.value, AmbiguousSubmission)
            assert_no_key(info.value)


def _png(tmp_path: Path) -> Path:
    path = tmp_path / "ref.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return path


def _redirects(count: int, final: Any) -> list[Any]:
    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n < count:
            raise web.HTTPTemporaryRedirect(f"/hop/{n + 1}")
        return await final(request)

    return ["*", "/hop/{n}", hop]


async def _task(request: web.Request) -> web.Response:
    return web.json_response({"id": "t1", "status": "pending"})


async def test_redirects_are_followed_up_to_the_limit(serve: Serve, clients: Any) -> None:
    async def start(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hop/1")

    server = await serve("GET", "/v1/tasks/{task_id}", start, *_redirects(3, _task))
    assert (await clients(server, max_redirects=3).get_task("t1")).task_id == "t1"
    with pytest.raises(PermanentGatewayError, match="too many redirects") as info:
        await clients(server, max_redirects=2).get_task("t1")
    assert_no_key(info.value)


async def test_redirect_to_another_scheme_is_refused(serve: Serve, clients: Any) -> None:
    async def to_file(request: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    server = await serve("GET", "/v1/tasks/{task_id}", to_file)
    with pytest.raises(PermanentGatewayError, match="redirect"):
        await clients(server).get_task("t1")


async def test_no_redirects_when_the_limit_is_zero(serve: Serve, clients: Any) -> None:
    async def start(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    server = await serve("GET", "/v1/tasks/{task_id}", start)
    with pytest.raises(GatewayError, match="HTTP 302"):
        await clients(server, max_redirects=0).get_task("t1")


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def test_tls_certificates_are_always_verified(
    aiohttp_server: Any, self_signed: ssl.SSLContext
) -> None:
    reached: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response(TASK)

    app = web.Application()
    app.router.add_post("/v1/videos/generations", handler)
    server = await aiohttp_server(app, ssl=self_signed)
    base = str(server.make_url("/"))
    assert base.startswith("https://")
    async with GatewayClient(base, None, KEY) as client:
        with pytest.raises(ConnectionFailed, match=r"(?i)certificate") as info:
            await client.create_task({"prompt": "x"})
    assert info.value.maybe_sent is False
    assert reached == []
