"""Helpers for the gateway client tests: one inline aiohttp.web handler per test, on 127.0.0.1.

``serve(method, path, handler)`` starts a real server with that one route (more can be added
with further triples) and returns it; ``client_for(server)`` makes a GatewayClient pointed at
it with a recognisable key, so every test can also check the key never leaks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from runner.providers.gateway.client import ClientTimeouts, GatewayClient

KEY = "sk-shotrun-TEST-7f3a9c2e1b5d"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[..., Awaitable[TestServer]]

TASK: dict[str, Any] = {
    "created": 1757169743,
    "id": "task-unified-1757169743-7cvnl5zw",
    "model": "kling-o3-reference-to-video",
    "object": "video.generation.task",
    "progress": 0,
    "status": "pending",
    "type": "video",
    "task_info": {"can_cancel": True, "estimated_time": 300, "video_duration": 5},
    "usage": {"billing_rule": "per_second", "credits_reserved": 40.5, "user_group": "default"},
}

FAST = ClientTimeouts(connect=5.0, request=5.0, upload=5.0, download_read=5.0)


@pytest.fixture
def serve(aiohttp_server: Any) -> Serve:
    async def start(*routes: Any) -> TestServer:
        app = web.Application()
        for i in range(0, len(routes), 3):
            method, path, handler = routes[i : i + 3]
            app.router.add_route(method, path, handler)
        server: TestServer = await aiohttp_server(app)
        return server

    return start


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., GatewayClient]]:
    made: list[GatewayClient] = []

    def make(server: TestServer, **kw: Any) -> GatewayClient:
        kw.setdefault("timeouts", FAST)
        files = kw.pop("files_url", None)
        client = GatewayClient(str(server.make_url("/")), files, KEY, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def assert_no_key(exc: BaseException) -> None:
    """The key is in none of the texts an exception can be turned into."""
    texts = [str(exc), repr(exc), *map(str, exc.args)]
    texts += [str(v) for v in vars(exc).values()] if hasattr(exc, "__dict__") else []
    for text in texts:
        assert KEY not in text
    assert exc.__cause__ is None or KEY not in repr(exc.__cause__)
