"""GatewayClient happy paths, lifecycle, and where the bearer key does (not) go."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from runner.core.errors import GatewayError, MalformedResponse
from runner.core.redact import redact
from runner.providers.gateway.client import GatewayClient
from runner.wire.protocol import Gateway, TaskState

from .conftest import KEY, TASK, Serve, assert_no_key


async def test_create_task_sends_json_with_bearer_key_and_parses_answer(
    serve: Serve, clients: Any
) -> None:
    seen: dict[str, Any] = {}

    async def create(request: web.Request) -> web.Response:
        seen["auth"] = request.headers.get("Authorization")
        seen["type"] = request.content_type
        seen["body"] = await request.json()
        return web.json_response(TASK)

    server = await serve("POST", "/v1/videos/generations", create)
    payload = {"model": "kling-o3-reference-to-video", "prompt": "a cat, @Image1", "duration": 5}
    state = await clients(server).create_task(payload)
    assert seen == {"auth": f"Bearer {KEY}", "type": "application/json", "body": payload}
    assert state == TaskState(
        task_id="task-unified-1757169743-7cvnl5zw",
        status="pending",
        progress=0,
        estimated_time=300.0,
        credits_reserved=40.5,
        video_duration=5.0,
    )


async def test_get_task_completed_and_failed(serve: Serve, clients: Any) -> None:
    answers = {
        "t-done": {"id": "t-done", "status": "completed", "progress": 100,
                   "results": ["https://cdn.example/v.mp4"]},
        "t-bad": {"id": "t-bad", "status": "failed", "progress": 30,
                  "error": {"code": "content_policy_violation", "message": "refused"}},
    }

    async def query(request: web.Request) -> web.Response:
        return web.json_response(answers[request.match_info["task_id"]])

    server = await serve("GET", "/v1/tasks/{task_id}", query)
    client = clients(server)
    done = await client.get_task("t-done")
    assert (done.status, done.results) == ("completed", ("https://cdn.example/v.mp4",))
    bad = await client.get_task("t-bad")
    assert (bad.status, bad.error_code, bad.error_message) == (
        "failed", "content_policy_violation", "refused")


async def test_get_task_escapes_the_id_in_the_path(serve: Serve, clients: Any) -> None:
    seen: list[str] = []

    async def query(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"id": "x", "status": "pending"})

    server = await serve("GET", "/v1/tasks/{task_id:.*}", query)
    with pytest.raises(MalformedResponse, match="describes task x"):
        await clients(server).get_task("../../etc/passwd")
    assert seen == ["/v1/tasks/..%2F..%2Fetc%2Fpasswd"]


async def test_base_url_with_a_path_prefix_is_kept(serve: Serve) -> None:
    async def query(request: web.Request) -> web.Response:
        return web.json_response({"id": "t1", "status": "processing", "progress": 42})

    server = await serve("GET", "/gw/v1/tasks/{task_id}", query)
    async with GatewayClient(str(server.make_url("/gw/")), None, KEY) as client:
        assert (await client.get_task("t1")).progress == 42


async def test_use_after_close_is_refused_and_close_is_idempotent(
    serve: Serve, tmp_path: Path
) -> None:
    async def query(request: web.Request) -> web.Response:
        return web.json_response({"id": "t1", "status": "pending"})

    server = await serve("GET", "/v1/tasks/{task_id}", query)
    async with GatewayClient(str(server.make_url("/")), None, KEY) as client:
        await client.get_task("t1")
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_task("t1")
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.download(str(server.make_url("/x")), tmp_path / "x.part")


def test_client_matches_the_gateway_protocol_and_has_no_tls_switch() -> None:
    for name in ("create_task", "get_task", "upload_file", "download", "close"):
        assert inspect.signature(getattr(GatewayClient, name)).parameters.keys() == \
            inspect.signature(getattr(Gateway, name)).parameters.keys()
    params = set(inspect.signature(GatewayClient.__init__).parameters)
    assert not params & {"ssl", "verify", "verify_ssl", "insecure", "ssl_context"}


@pytest.mark.parametrize(
    "base", ["ftp://gw.example", "file:///etc/passwd", "gw.example", "https://u:p@gw.example"],
    ids=["ftp", "file", "no-scheme", "credentials"],
)
def test_only_http_and_https_base_urls(base: str) -> None:
    with pytest.raises(ValueError, match=r"api\.base_url"):
        GatewayClient(base, None, KEY)


def test_key_is_registered_for_redaction_and_absent_from_repr() -> None:
    client = GatewayClient("https://gw.example", None, KEY)
    assert KEY not in repr(client)
    assert redact(f"x {KEY} y") == "x [REDACTED] y"


async def test_key_never_in_errors_or_logs_even_when_the_server_echoes_it(
    serve: Serve, clients: Any
) -> None:
    async def echo(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        status = int(request.match_info["task_id"])
        if status == 200:
            return web.Response(text=f"not json {auth}")
        body = {"error": {"code": auth, "message": f"bad key {auth}", "type": auth,
                          "param": auth}}
        return web.json_response(body, status=status)

    server = await serve("GET", "/v1/tasks/{task_id}", echo)
    client = clients(server)
    with capture_logs() as logs:
        for status in (200, 400, 401, 402, 403, 404, 429, 500):
            with pytest.raises(GatewayError) as info:
                await client.get_task(str(status))
            assert_no_key(info.value)
    assert KEY not in json.dumps(logs, default=str)


async def test_key_goes_only_to_the_configured_origins(
    serve: Serve, clients: Any, tmp_path: Path
) -> None:
    seen: list[str | None] = []

    async def result(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=b"video")

    cdn = await serve("GET", "/v.mp4", result)

    async def redirect(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        raise web.HTTPFound(str(cdn.make_url("/v.mp4")))

    async def own(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=b"video")

    gateway = await serve("GET", "/redirect", redirect, "GET", "/own.mp4", own)
    client = clients(gateway)
    await client.download(str(cdn.make_url("/v.mp4")), tmp_path / "a.part")
    await client.download(str(gateway.make_url("/redirect")), tmp_path / "b.part")
    await client.download(str(gateway.make_url("/own.mp4")), tmp_path / "c.part")
    bearer = f"Bearer {KEY}"
    assert seen == [None, bearer, None, bearer]


async def test_frozen_payloads_are_sent_as_json(serve: Serve, clients: Any) -> None:
    seen: list[Any] = []

    async def create(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(TASK)

    server = await serve("POST", "/v1/videos/generations", create)
    payload = MappingProxyType({"elements": (MappingProxyType({"video_url": "https://v"}),),
                                "prompt": "ok"})
    await clients(server).create_task(payload)
    assert seen == [{"elements": [{"video_url": "https://v"}], "prompt": "ok"}]
    with pytest.raises(GatewayError, match="not JSON"):
        await clients(server).create_task({"prompt": object()})
