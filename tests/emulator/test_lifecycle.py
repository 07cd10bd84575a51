"""A task goes pending -> processing -> completed/failed on the clock, with a real video."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from runner.emulator import RunningEmulator
from tests.emulator.conftest import create, fetch, png_bytes, polls, wait_for_status


async def test_task_goes_pending_processing_completed_with_rising_progress(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(queue_time=0.2, processing_time=0.4)
    created = await create(http)
    assert (created["status"], created["progress"]) == ("pending", 0)
    assert created["task_info"]["can_cancel"] is True
    seen: list[tuple[str, int]] = []
    for _ in polls():
        async with http.get(f"/v1/tasks/{created['id']}") as response:
            body = await response.json()
        seen.append((body["status"], body["progress"]))
        if body["status"] == "completed":
            break
    statuses = [status for status, _ in seen]
    assert "processing" in statuses
    assert statuses.index("processing") < statuses.index("completed")
    progress = [p for s, p in seen if s == "processing"]
    assert progress == sorted(progress) and all(1 <= p <= 99 for p in progress)
    assert body["progress"] == 100 and body["task_info"]["can_cancel"] is False
    assert len(body["results"]) == 1
    status, data = await fetch(http, body["results"][0])
    assert status == 200 and data[4:8] == b"ftyp"


async def test_failure_rate_fails_tasks_with_a_configured_business_code(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(failure_rate=1.0, failure_codes=("content_policy_violation",))
    created = await create(http)
    body = await wait_for_status(http, created["id"])
    assert body["status"] == "failed"
    assert body["error"]["code"] == "content_policy_violation"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "results" not in body
    assert emulator.stats()["failed_tasks"] == 1


async def test_estimated_time_and_credits_tell_the_truth(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(queue_time=2, processing_time=58)
    body = await create(http, duration=5)
    assert body["task_info"]["estimated_time"] == 60
    assert body["task_info"]["video_duration"] == 5
    assert body["usage"]["credits_reserved"] == 40.5  # 5 s x 8.1 at 720p
    audio = await create(http, duration=4, resolution="1080p", generate_audio=True)
    assert audio["usage"]["credits_reserved"] == round(4 * (10.8 + 2.7), 4)
    four_k = await create(http, duration=3, resolution="4k", generate_audio=True)
    assert four_k["usage"]["credits_reserved"] == round(3 * 16.2, 4)  # 4k: audio not extra


async def test_estimate_factor_scales_the_reported_estimate_only(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(queue_time=2, processing_time=58, estimate_factor=1 / 3)
    low = await create(http)
    assert low["task_info"]["estimated_time"] == 20  # a hint 3x too low
    task = emulator.core.board.get(low["id"])
    assert task is not None and (task.queue, task.processing) == (2, 58)  # real plan kept
    # 1000x too high: the task still finishes on its own clock, within the bounded polling
    # (a task that really took the 150 s it claims would exhaust it), and keeps its claim.
    emulator.update(queue_time=0.05, processing_time=0.1, estimate_factor=1000)
    high = await create(http)
    assert high["task_info"]["estimated_time"] == 150
    done = await wait_for_status(http, high["id"])
    assert done["status"] == "completed" and done["task_info"]["estimated_time"] == 150


async def test_estimated_time_is_whole_seconds_as_documented(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    # The documented example is `300`: a sub-second test task reports 0, a 2.6 s one 3.
    emulator.update(queue_time=0.05, processing_time=0.1)
    quick = await create(http)
    assert quick["task_info"]["estimated_time"] == 0
    assert isinstance(quick["task_info"]["estimated_time"], int)
    emulator.update(queue_time=0.3, processing_time=2.3)
    assert (await create(http))["task_info"]["estimated_time"] == 3


async def test_progress_none_leaves_the_field_out_of_every_body(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(queue_time=0.05, processing_time=0.2, progress="none")
    created = await create(http)
    assert "progress" not in created and created["status"] == "pending"
    seen = []
    for _ in polls():
        async with http.get(f"/v1/tasks/{created['id']}") as response:
            body = await response.json()
        seen.append(body["status"])
        assert "progress" not in body, body
        if body["status"] == "completed":
            break
    assert seen[-1] == "completed" and body["results"]


async def test_rates_are_configurable(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(rates={"720p": 1.0, "audio": 0.5})
    body = await create(http, duration=6, generate_audio=True)
    assert body["usage"]["credits_reserved"] == 9


async def test_a_render_that_crashes_fails_the_task_not_the_server(
    emulator: RunningEmulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> bytes:
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(emulator.core.renderer, "render", broken)
    body = await wait_for_status(http, (await create(http))["id"])
    assert body["status"] == "failed" and body["error"]["code"] == "service_error"
    monkeypatch.undo()
    assert (await wait_for_status(http, (await create(http))["id"]))["status"] == "completed"


async def test_a_task_stays_processing_until_its_video_exists(
    emulator: RunningEmulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    real = emulator.core.renderer.render

    async def slow(*args: Any, **kw: Any) -> bytes:
        await release.wait()
        return await real(*args, **kw)

    monkeypatch.setattr(emulator.core.renderer, "render", slow)
    emulator.update(queue_time=0.0, processing_time=0.0)
    task = await create(http)
    async with http.get(f"/v1/tasks/{task['id']}") as response:
        body = await response.json()
    assert (body["status"], body["progress"]) == ("processing", 99)  # time is up, no file yet
    release.set()
    assert (await wait_for_status(http, task["id"]))["status"] == "completed"


@pytest.mark.parametrize(
    ("size", "code"),
    [((120, 400), "image_dimension_mismatch"), ((900, 320), "image_dimension_mismatch"),
     (None, "image_processing_error"), ((320, 700), None)],
    ids=["too-small", "too-wide", "unreadable", "fine"],
)
async def test_check_images_fails_tasks_whose_images_break_the_rules(
    emulator: RunningEmulator, http: aiohttp.ClientSession, size: tuple[int, int] | None,
    code: str | None
) -> None:
    import base64

    emulator.update(check_images=True)
    data = png_bytes(*size) if size else png_bytes()[:40] + b"garbage" * 10
    encoded = base64.b64encode(data).decode()
    async with http.post("/api/v1/files/upload/base64", json={"base64_data": encoded}) as resp:
        url = (await resp.json())["data"]["file_url"]
    body = await wait_for_status(http, (await create(http, image_urls=[url]))["id"])
    if code is None:
        assert body["status"] == "completed"
    else:
        assert body["status"] == "failed" and body["error"]["code"] == code
        assert url in body["error"]["message"]
