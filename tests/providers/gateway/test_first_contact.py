"""First contact: a URL that never reached the gateway is told apart from a gateway in trouble.

Until an origin has answered like the gateway, a refused connection or a plainly foreign
answer is a GatewayUnreachable naming the URL; once it has, the very same outcomes keep the
docs/gateway-api.md semantics (a refused connection is a plain ConnectionFailed that the scheduler
retries patiently, a garbled 2xx on a creation is ambiguous).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp import web

from runner.core.errors import (
    ConnectionFailed,
    GatewayUnreachable,
    MalformedResponse,
    PermanentGatewayError,
    TransientGatewayError,
)
from runner.providers.gateway.client import GatewayClient
from runner.wire.protocol import NOT_THE_GATEWAY

from .conftest import FAST, KEY, TASK, Serve, assert_no_key

HTML = "<!DOCTYPE HTML>\n<html><body><h1>Error response</h1></body></html>"


async def test_a_gateway_that_answered_then_refuses_is_a_blip_not_a_wrong_url(
        serve: Serve) -> None:
    async def task(request: web.Request) -> web.Response:
        return web.json_response(dict(TASK, id=request.match_info["task_id"]))

    server = await serve("GET", "/v1/tasks/{task_id}", task)
    async with GatewayClient(str(server.make_url("/")), None, KEY, timeouts=FAST) as client:
        assert (await client.get_task("t1")).task_id == "t1"
        await server.close()  # the gateway goes away mid-run
        with pytest.raises(ConnectionFailed, match="nothing was sent") as info:
            await client.get_task("t1")
    assert type(info.value) is ConnectionFailed and info.value.maybe_sent is False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_the_file_service_is_named_with_its_own_setting(serve: Serve, tmp_path: Any) -> None:
    async def task(request: web.Request) -> web.Response:
        return web.json_response(TASK)

    server = await serve("GET", "/v1/tasks/{task_id}", task)
    files = f"http://127.0.0.1:{_free_port()}"
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    async with GatewayClient(str(server.make_url("/")), files, KEY, timeouts=FAST) as client:
        with pytest.raises(GatewayUnreachable) as info:
            await client.upload_file(image, "image/png")
    assert str(info.value) == (f"cannot connect to the file service at {files} (connection "
                               "refused): check api.files_url or --files-url")


@pytest.mark.parametrize(
    ("status", "content_type", "body", "kind"),
    [
        (501, "text/html", HTML, "an HTML page"),
        (404, "text/plain", "404: Not Found", "a body that is not JSON"),
        (405, "application/json", '{"detail": "Method Not Allowed"}', "JSON that is not the"),
        (403, "text/html", HTML, "an HTML page"),
    ],
)
async def test_a_first_answer_that_is_not_the_gateways_names_the_url(
        serve: Serve, clients: Any, status: int, content_type: str, body: str,
        kind: str) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    server = await serve("POST", "/v1/videos/generations", page)
    with pytest.raises(GatewayUnreachable) as info:
        await clients(server).create_task({"prompt": "x"})
    exc = info.value
    url = str(server.make_url("/v1/videos/generations"))
    assert str(exc).startswith(f"{url} answered HTTP {status} with {kind}")
    assert str(exc).endswith(": is api.base_url (or --base-url) the gateway?")
    assert exc.retry is False and exc.maybe_sent is False and exc.status == status
    assert_no_key(exc)


async def test_a_first_creation_accepted_with_an_html_page_may_have_been_billed(
        serve: Serve, clients: Any) -> None:
    """Issue 21: a 2xx to a creation is an acceptance, whoever sent it. Once "nothing was
    sent" (the next run paid again, counting nothing ambiguous); now unreadable, which the
    scheduler counts as ambiguous, still naming the setting to check."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(status=200, text=HTML, content_type="text/html")

    server = await serve("POST", "/v1/videos/generations", page)
    with pytest.raises(MalformedResponse) as info:
        await clients(server).create_task({"prompt": "x"})
    exc = info.value
    assert not isinstance(exc, GatewayUnreachable)
    assert exc.status == 200 and exc.code == NOT_THE_GATEWAY
    assert "answered HTTP 200 with an HTML page: is api.base_url (or --base-url) the " \
           "gateway?" in str(exc) and "may have been billed" in str(exc)
    assert_no_key(exc)


async def test_after_the_gateway_answered_its_errors_keep_their_documented_meaning(
        serve: Serve, clients: Any) -> None:
    answers = [web.json_response(TASK),
               web.Response(status=200, text=HTML, content_type="text/html"),
               web.Response(status=502, text=HTML, content_type="text/html"),
               web.json_response({"error": {"type": "not_found_error"}}, status=404)]

    async def next_answer(request: web.Request) -> web.Response:
        return answers.pop(0)

    server = await serve("POST", "/v1/videos/generations", next_answer)
    client = clients(server)
    await client.create_task({"prompt": "x"})
    with pytest.raises(MalformedResponse) as garbled:
        await client.create_task({"prompt": "x"})
    assert garbled.value.status == 200  # accepted *something*: ambiguous, as before
    with pytest.raises(TransientGatewayError):
        await client.create_task({"prompt": "x"})
    with pytest.raises(PermanentGatewayError):
        await client.create_task({"prompt": "x"})


async def test_a_proxy_page_for_passing_trouble_is_not_a_wrong_url(
        serve: Serve, clients: Any) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text=HTML, content_type="text/html")

    server = await serve("POST", "/v1/videos/generations", down)
    with pytest.raises(TransientGatewayError) as info:
        await clients(server).create_task({"prompt": "x"})
    assert not isinstance(info.value, GatewayUnreachable)
