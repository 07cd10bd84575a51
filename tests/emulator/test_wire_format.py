"""Every documented answer and error has exactly the documented shape (golden JSON)."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from runner.emulator import RunningEmulator
from tests.emulator.conftest import KEY, create, payload, png_bytes, wait_for_status
from tests.helpers.emulator_golden import assert_golden


async def answer(http: aiohttp.ClientSession, method: str, path: str, **kw: Any
                 ) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.request(method, path, **kw) as response:
        return response.status, await response.json(), response


async def test_creation_answer(http: aiohttp.ClientSession) -> None:
    status, body, _ = await answer(http, "POST", "/v1/videos/generations",
                                   json=payload(duration=5))
    assert_golden("create_pending", status, body)


async def test_query_answers_through_the_life_cycle(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(queue_time=0.0, processing_time=30.0)
    created = await create(http, duration=5)
    status, body, _ = await answer(http, "GET", f"/v1/tasks/{created['id']}")
    assert 1 <= body["progress"] <= 99
    body["progress"] = 1  # it rises with time: pinned for the golden file
    assert_golden("task_processing", status, body)
    emulator.update(queue_time=0.0, processing_time=0.0)
    done = await create(http, duration=5)
    final = await wait_for_status(http, done["id"])
    assert_golden("task_completed", 200, final)


async def test_failed_task_answer(emulator: RunningEmulator, http: aiohttp.ClientSession
                                  ) -> None:
    emulator.update(failure_rate=1.0, failure_codes=("generation_timeout",),
                    processing_time=0.01)
    created = await create(http, duration=5)
    final = await wait_for_status(http, created["id"])
    final["progress"] = 0  # where it failed is random; the shape is what matters here
    assert_golden("task_failed", 200, final)


async def test_upload_answer(http: aiohttp.ClientSession) -> None:
    data = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    status, body, _ = await answer(http, "POST", "/api/v1/files/upload/base64",
                                   json={"base64_data": data, "file_name": "hero.png",
                                         "upload_path": "refs"})
    assert_golden("upload", status, body)


@pytest.mark.parametrize(
    ("name", "method", "path", "kw"),
    [
        ("error_400_task_id", "GET", "/v1/tasks/not-a-task", {}),
        ("error_404_task", "GET", "/v1/tasks/task-unified-1757169743-7cvnl5zw", {}),
        ("error_400_not_json", "POST", "/v1/videos/generations", {"data": b"{oops"}),
        ("error_400_not_json", "POST", "/v1/videos/generations", {"data": b"\xff\xfe"}),
        ("error_400_not_json", "POST", "/v1/videos/generations",
         {"data": b"[" * 100_000 + b"]" * 100_000}),
        ("error_404_route", "DELETE", "/v1/nothing-here", {}),
        ("error_400_prompt_too_long", "POST", "/v1/videos/generations",
         {"json": payload(prompt="x" * 2501)}),
        ("error_400_unknown_field", "POST", "/v1/videos/generations",
         {"json": payload(negative_prompt="blur")}),
        ("error_404_route", "GET", "/v1/nothing-here", {}),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("error") else "",
)
async def test_error_answers(http: aiohttp.ClientSession, name: str, method: str, path: str,
                             kw: dict[str, Any]) -> None:
    status, body, _ = await answer(http, method, path, **kw)
    assert_golden(name, status, body)


@pytest.mark.parametrize(
    ("name", "headers"),
    [("error_401_missing_key", {}), ("error_401_wrong_key", {"Authorization": "Bearer nope"}),
     ("error_401_missing_key", {"Authorization": "Basic abc"})],
    ids=["no-header", "wrong-key", "not-bearer"],
)
async def test_authentication_errors(emulator: RunningEmulator, name: str,
                                     headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession(base_url=emulator.base_url, headers=headers) as bare:
        for method, path in [("POST", "/v1/videos/generations"),
                             ("GET", "/v1/tasks/task-unified-1757169743-7cvnl5zw"),
                             ("POST", "/api/v1/files/upload/base64")]:
            status, body, _ = await answer(bare, method, path, json=payload())
            assert_golden(name, status, body)
            assert KEY not in str(body)
    assert emulator.stats()["accepted_tasks"] == 0


async def test_any_key_is_accepted_when_none_is_configured(
    emulator: RunningEmulator
) -> None:
    emulator.update(api_key=None)
    async with aiohttp.ClientSession(base_url=emulator.base_url,
                                     headers={"Authorization": "Bearer whatever"}) as other:
        await create(other)
    async with aiohttp.ClientSession(base_url=emulator.base_url) as bare:
        status, body, _ = await answer(bare, "POST", "/v1/videos/generations", json=payload())
        assert status == 401 and body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("code", ["429", "500", "502", "503"])
async def test_injected_http_errors(emulator: RunningEmulator, http: aiohttp.ClientSession,
                                    code: str) -> None:
    emulator.update(error_rates={code: 1.0})
    status, body, response = await answer(http, "POST", "/v1/videos/generations",
                                          json=payload())
    headers = {"Retry-After": response.headers["Retry-After"]} if code == "429" else None
    assert_golden(f"error_{code}_injected", status, body, headers)
    stats = emulator.stats()
    assert stats["accepted_tasks"] == 0 and stats["injected_errors"] == 1
    assert stats["rate_limited"] == (1 if code == "429" else 0)


async def test_quota_and_concurrency_errors(emulator: RunningEmulator,
                                            http: aiohttp.ClientSession) -> None:
    emulator.update(credits=10.0)
    status, body, _ = await answer(http, "POST", "/v1/videos/generations", json=payload())
    assert_golden("error_402_credits", status, body)
    emulator.update(credits=None, concurrency_cap=1, queue_time=30.0)
    await create(http)
    status, body, response = await answer(http, "POST", "/v1/videos/generations",
                                          json=payload())
    assert_golden("error_429_concurrency", status, body,
                  {"Retry-After": response.headers["Retry-After"]})
