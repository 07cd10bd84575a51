"""Every documented HTTP error, Retry-After, and unreadable answers, through a real server."""

from __future__ import annotations

import json
import random
import time
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

from runner.core.errors import (
    AuthenticationFailed,
    GatewayError,
    GatewayUnreachable,
    MalformedResponse,
    PermanentGatewayError,
    QuotaExhausted,
    RateLimited,
    TransientGatewayError,
)
from runner.wire.parse import MAX_JSON_BYTES

from .conftest import TASK, Serve, assert_no_key

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large_error",
    429: "rate_limit_error", 500: "internal_server_error", 502: "upstream_error",
    503: "service_unavailable_error", 504: "gateway_timeout", 408: "timeout", 418: "teapot",
}


def _error_handler(status: int, headers: dict[str, str] | None = None) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = {"error": {"code": f"code_{status}", "message": f"says {status}",
                          "type": ERROR_TYPES[status]}}
        if status == 400:
            body["error"]["param"] = "prompt"
        return web.json_response(body, status=status, headers=headers)

    return handler


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, PermanentGatewayError),
        (401, AuthenticationFailed),
        (402, QuotaExhausted),
        (403, PermanentGatewayError),
        (404, PermanentGatewayError),
        (413, PermanentGatewayError),
        (418, PermanentGatewayError),
        (429, RateLimited),
        (408, TransientGatewayError),
        (500, TransientGatewayError),
        (502, TransientGatewayError),
        (503, TransientGatewayError),
        (504, TransientGatewayError),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else "",
)
@pytest.mark.parametrize("operation", ["create", "query"])
async def test_http_errors_map_to_the_project_errors(
    serve: Serve, clients: Any, status: int, expected: type[GatewayError], operation: str,
) -> None:
    handler = _error_handler(status)
    server = await serve("POST", "/v1/videos/generations", handler,
                         "GET", "/v1/tasks/{task_id}", handler)
    client = clients(server)
    with pytest.raises(GatewayError) as info:
        if operation == "create":
            await client.create_task({"prompt": "x"})
        else:
            await client.get_task("task-1")
    exc = info.value
    if status == 404 and operation == "create":
        # The gateway has its creation endpoint: a 404 there is someone else (or a base URL
        # with one path segment too many), said with the URL (runner.providers.gateway.reach).
        assert type(exc) is GatewayUnreachable and exc.retry is False
        assert "/v1/videos/generations answered HTTP 404" in str(exc)
        assert "is api.base_url (or --base-url) the gateway?" in str(exc)
        return
    assert type(exc) is expected
    assert exc.status == status
    assert exc.code == f"code_{status}"
    assert f"says {status}" in str(exc) and f"HTTP {status}" in str(exc)
    assert_no_key(exc)
    if status == 400:
        assert exc.param == "prompt" and "invalid 'prompt'" in str(exc)
    if status == 404 and operation == "query":
        assert "task task-1 is unknown" in str(exc)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), (" 12 ", 12.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
     ("soon", None), ("-3", None), (None, None)],
    ids=["seconds", "zero", "spaces", "past-date", "garbage", "negative", "absent"],
)
async def test_rate_limited_reads_retry_after(
    serve: Serve, clients: Any, header: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": header} if header is not None else None
    server = await serve("POST", "/v1/videos/generations", _error_handler(429, headers))
    with pytest.raises(RateLimited) as info:
        await clients(server).create_task({"prompt": "x"})
    assert info.value.retry_after == expected


async def test_rate_limited_with_a_future_http_date(serve: Serve, clients: Any) -> None:
    headers = {"Retry-After": formatdate(time.time() + 3600, usegmt=True)}
    server = await serve("POST", "/v1/videos/generations", _error_handler(429, headers))
    with pytest.raises(RateLimited) as info:
        await clients(server).create_task({"prompt": "x"})
    assert info.value.retry_after is not None and 3500 < info.value.retry_after <= 3600


async def test_error_answer_that_is_not_json_still_maps_by_status(
    serve: Serve, clients: Any
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>")

    server = await serve("GET", "/v1/tasks/{task_id}", handler)
    with pytest.raises(TransientGatewayError, match="Bad Gateway"):
        await clients(server).get_task("t1")


async def test_file_service_style_error_body(serve: Serve, clients: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"success": False, "code": 403, "msg": "quota used"}, status=403)

    server = await serve("GET", "/v1/tasks/{task_id}", handler)
    with pytest.raises(PermanentGatewayError, match="quota used"):
        await clients(server).get_task("t1")


def _body(kind: str) -> tuple[bytes, dict[str, str]]:
    big = b'{"id": "t1", "status": "pending", "pad": "' + b"x" * MAX_JSON_BYTES + b'"}'
    bodies = {
        "not-json": (b"hello", "not valid JSON"),
        "not-utf8": (b'{"id": "t\xff\xfe", "status": "pending"}', "not UTF-8"),
        "list": (b'[1, 2]', "JSON list, expected an object"),
        "no-id": (b'{"status": "pending"}', "no task 'id'"),
        "id-number": (b'{"id": 12, "status": "pending"}', "'id' is int"),
        "no-status": (b'{"id": "t1"}', "no 'status'"),
        "odd-status": (b'{"id": "t1", "status": "sleeping"}', "unknown task status 'sleeping'"),
        "progress-text": (b'{"id": "t1", "status": "pending", "progress": "x"}', "'progress'"),
        "no-results": (b'{"id": "t1", "status": "completed"}', "has no result URL"),
        "results-text": (b'{"id": "t1", "status": "completed", "results": "u"}', "'results'"),
        # NaN is read as a float and judged by its field: progress must be a real number.
        "nan": (b'{"id": "t1", "status": "pending", "progress": NaN}', "'progress'"),
        "big": (big, "larger than"),
    }
    body, _ = bodies[kind]
    return body, {"match": bodies[kind][1]}


@pytest.mark.parametrize(
    "kind",
    ["not-json", "not-utf8", "list", "no-id", "id-number", "no-status", "odd-status",
     "progress-text", "no-results", "results-text", "nan", "big"],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
async def test_malformed_answers(serve: Serve, clients: Any, kind: str, chunked: bool) -> None:
    body, expect = _body(kind)

    async def handler(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 65536):
            await resp.write(body[i : i + 65536])
        await resp.write_eof()
        return resp

    server = await serve("POST", "/v1/videos/generations", handler,
                         "GET", "/v1/tasks/{task_id}", handler)
    client = clients(server)
    with pytest.raises(MalformedResponse, match=expect["match"]) as info:
        await client.get_task("t1")
    assert_no_key(info.value)
    with pytest.raises(MalformedResponse, match=expect["match"]) as created:
        await client.create_task({"prompt": "x"})
    assert created.value.status == 200  # accepted *something*: the task may exist


async def test_unexpected_redirect_status_is_malformed(serve: Serve, clients: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=304)

    server = await serve("GET", "/v1/tasks/{task_id}", handler)
    with pytest.raises(MalformedResponse, match="HTTP 304"):
        await clients(server).get_task("t1")


async def test_task_answer_with_extra_and_odd_hints_is_accepted(
    serve: Serve, clients: Any
) -> None:
    odd = dict(TASK, task_info={"estimated_time": "soon"}, usage=[], extra={"x": 1})

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(odd)

    server = await serve("POST", "/v1/videos/generations", handler)
    state = await clients(server).create_task({"prompt": "x"})
    assert (state.estimated_time, state.credits_reserved) == (None, None)


async def test_huge_error_answer_still_maps_by_status(serve: Serve, clients: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=503)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(40):
            await resp.write(b"overloaded " * 6000)
        await resp.write_eof()
        return resp

    server = await serve("GET", "/v1/tasks/{task_id}", handler)
    with pytest.raises(TransientGatewayError, match="HTTP 503"):
        await clients(server).get_task("t1")


async def test_random_answers_over_http_only_raise_project_errors(
    serve: Serve, clients: Any
) -> None:
    """Hundreds of random statuses and bodies through a real server: a value or a GatewayError."""
    rng = random.Random(20261124)
    pieces = [b"{", b"}", b"[", b"]", b'"id"', b'"status"', b'"completed"', b'"results"', b":",
              b",", b"null", b"1e999", b'"\\ud800"', b"\xff", b"\x00", b"true", b'"t1"']
    answers: list[tuple[int, bytes]] = []
    for _ in range(300):
        status = rng.choice([200, 200, 200, 201, 204, 301, 400, 401, 402, 404, 429, 500, 599])
        if rng.random() < 0.5:
            body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        else:
            task = dict(TASK, status=rng.choice(["pending", "completed", "failed", "x", 3]))
            if rng.random() < 0.5:
                task["results"] = rng.choice([[], ["u"], "u", [None], [{"url": "v"}]])
            body = json.dumps(task).encode()
        answers.append((status, body))
    queue = iter(answers)

    async def handler(request: web.Request) -> web.Response:
        status, body = next(queue)
        return web.Response(status=status, body=body, headers={"Retry-After": "x"})

    server = await serve("GET", "/v1/tasks/{task_id}", handler)
    client = clients(server, max_redirects=0)
    outcomes: set[str] = set()
    for _ in answers:
        try:
            await client.get_task("task-unified-1757169743-7cvnl5zw")
            outcomes.add("ok")
        except GatewayError as exc:
            outcomes.add(type(exc).__name__)
    assert {"ok", "MalformedResponse", "TransientGatewayError"} <= outcomes
