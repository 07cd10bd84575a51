"""fal.ai's queue in the emulator: cancel, and inputs refused only once queued.

Real HTTP on 127.0.0.1 with fal's own key header, as a fal client sends it. Time-dependent
states are reached by settings (a queue time far beyond the test: a request stays queued;
none: it runs at once) and by polling to a deadline, never by sleeping for a state.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from runner.emulator import EmulatorSettings, RunningEmulator, run_emulator
from tests.emulator.conftest import FAST, KEY, payload, polls

APP = "/fal-ai/kling-video/o3/standard/reference-to-video"
REQUESTS = "/fal-ai/kling-video/requests/"
FAR = 600.0  # a queue time no test outlives: the request is still queued when cancelled
CANCELLED = "The task was cancelled; submit it again."
Start = Callable[..., Awaitable[tuple[RunningEmulator, aiohttp.ClientSession]]]


def fal_input(**changes: Any) -> dict[str, Any]:
    """A small valid fal input (3 s) with ``changes`` applied (None removes a field)."""
    body: dict[str, Any] = {"prompt": "A red kite over a grey sea", "duration": "3",
                            "aspect_ratio": "16:9"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start fal-speaking emulators (FAST with changes) and a keyed session for each."""
    async with contextlib.AsyncExitStack() as stack:
        async def started(provider: str = "fal", **changes: Any
                          ) -> tuple[RunningEmulator, aiohttp.ClientSession]:
            emulator = await stack.enter_async_context(
                run_emulator(FAST.replace(**changes), provider=provider))
            scheme = "Key" if provider == "fal" else "Bearer"
            session = await stack.enter_async_context(aiohttp.ClientSession(
                base_url=emulator.base_url, headers={"Authorization": f"{scheme} {KEY}"}))
            return emulator, session

        yield started


async def call(http: aiohttp.ClientSession, method: str, path: str, **kw: Any
               ) -> tuple[int, Any]:
    async with http.request(method, path, **kw) as response:
        return response.status, await response.json()


async def submit(http: aiohttp.ClientSession, body: dict[str, Any]) -> str:
    """Submit ``body``; the answer must be fal's four fields, nothing about the task."""
    status, answer = await call(http, "POST", APP, json=body)
    assert status == 200, answer
    rid = answer["request_id"]
    assert str(uuid.UUID(rid)) == rid  # fal's request ids are UUIDs, a late refusal's too
    base = answer["response_url"]
    assert base.startswith("http://127.0.0.1:") and base.endswith(f"{REQUESTS}{rid}")
    assert answer == {"request_id": rid, "status_url": f"{base}/status",
                      "response_url": base, "cancel_url": f"{base}/cancel"}
    return str(rid)


async def status_of(http: aiohttp.ClientSession, rid: str) -> dict[str, Any]:
    status, body = await call(http, "GET", f"{REQUESTS}{rid}/status")
    assert status == 200, body
    return dict(body)


async def until(http: aiohttp.ClientSession, rid: str, word: str) -> dict[str, Any]:
    """Poll the status until it reads ``word`` (bounded by a deadline)."""
    body: dict[str, Any] = {}
    for _ in polls():
        body = await status_of(http, rid)
        if body["status"] == word:
            return body
        await asyncio.sleep(0.005)  # pacing between polls, not waiting for a state
    raise AssertionError(f"{rid} never read {word}: {body}")


def cancel(http: aiohttp.ClientSession, rid: str) -> Awaitable[tuple[int, Any]]:
    return call(http, "PUT", f"{REQUESTS}{rid}/cancel")


async def test_cancel_takes_a_queued_request_out_of_the_queue(start: Start) -> None:
    # One task's worth of credits and one slot: both must come back with the cancel.
    emulator, http = await start(queue_time=FAR, credits=24.3, concurrency_cap=1)
    rid = await submit(http, fal_input())
    queued = await status_of(http, rid)
    assert queued["status"] == "IN_QUEUE" and queued["queue_position"] == 0
    assert await cancel(http, rid) == (202, {"status": "CANCELLATION_REQUESTED"})

    done = await status_of(http, rid)
    assert done["status"] == "COMPLETED" and done["error"] == CANCELLED
    assert done["error_type"] == "request_cancelled" and "queue_position" not in done
    status, body = await call(http, "GET", f"{REQUESTS}{rid}")
    assert status >= 400 and body == {"detail": CANCELLED}  # no video, as any failed one
    assert await cancel(http, rid) == (400, {"status": "ALREADY_COMPLETED"})

    task = emulator.core.board.named(rid)
    assert task is not None and task.job is not None
    await asyncio.wait({task.job}, timeout=10)  # the render's own end, not a sleep
    assert task.job.cancelled() and task.video is None
    stats = emulator.stats()
    assert stats["renders"] == 0 and stats["credits_reserved"] == 0
    assert (stats["accepted_tasks"], stats["cancelled_tasks"], stats["in_flight"]) == (1, 1, 0)
    assert (stats["failed_tasks"], stats["completed_tasks"]) == (0, 0)
    # Cancels are neither polls nor creations.
    assert (stats["cancel_requests"], stats["polls"], stats["creation_requests"]) == (2, 2, 1)
    assert stats["polls_per_task"] == {rid: 2}

    # Nothing was billed and the slot is free: the account takes the same task again.
    again = await submit(http, fal_input())
    assert (await status_of(http, again))["status"] == "IN_QUEUE"
    # fal bills in dollars (issue 21): 3 s at 720p, $0.084 a second.
    assert emulator.stats()["credits_reserved"] == 0.252


async def test_cancel_of_a_completed_request_is_already_completed(start: Start) -> None:
    emulator, http = await start(render="cached")
    rid = await submit(http, fal_input())
    done = await until(http, rid, "COMPLETED")
    assert "error" not in done
    assert await cancel(http, rid) == (400, {"status": "ALREADY_COMPLETED"})
    status, body = await call(http, "GET", f"{REQUESTS}{rid}")
    assert status == 200 and body["video"]["file_size"] > 0  # the cancel changed nothing
    assert emulator.stats()["cancelled_tasks"] == 0


async def test_cancel_of_a_running_request_is_already_completed(start: Start) -> None:
    # fal only signals a running app to stop; the emulator plays one that does not.
    emulator, http = await start(queue_time=0.0, processing_time=FAR, render="cached")
    rid = await submit(http, fal_input())
    assert (await until(http, rid, "IN_PROGRESS"))["status"] == "IN_PROGRESS"
    assert await cancel(http, rid) == (400, {"status": "ALREADY_COMPLETED"})
    assert (await status_of(http, rid))["status"] == "IN_PROGRESS"
    assert emulator.stats()["cancelled_tasks"] == 0


async def test_cancel_of_an_unknown_request_is_404(start: Start) -> None:
    _, http = await start()
    assert await cancel(http, "task-unified-1757169743-7cvnl5zw") == (
        404, {"detail": "Request not found"})


async def test_the_boards_own_id_is_no_request_id(start: Start) -> None:
    """The board's gateway-style id of a fal request is never handed out, so no route
    finds the request by it (a client tested against it would be tested against a shape
    fal never gives)."""
    emulator, http = await start(queue_time=FAR)
    rid = await submit(http, fal_input())
    task = emulator.core.board.named(rid)
    assert task is not None and task.task_id != rid
    for method, path in (("GET", f"{REQUESTS}{task.task_id}/status"),
                         ("GET", f"{REQUESTS}{task.task_id}"),
                         ("PUT", f"{REQUESTS}{task.task_id}/cancel")):
        assert await call(http, method, path) == (404, {"detail": "Request not found"})
    assert (await status_of(http, rid))["status"] == "IN_QUEUE"  # the cancel missed it
    assert emulator.stats()["polls_per_task"] == {rid: 1}


async def test_cancel_needs_the_key_and_meets_injected_faults(start: Start) -> None:
    emulator, http = await start(queue_time=FAR)
    rid = await submit(http, fal_input())
    path = f"{REQUESTS}{rid}/cancel"
    assert await call(http, "PUT", path, headers={"Authorization": "Key wrong"}) == (
        401, {"detail": "No user found for Key ID and Secret."})
    assert (await call(http, "PUT", path, headers={"Authorization": f"Bearer {KEY}"}))[0] == 401
    emulator.update(error_rates={"503": 1.0})
    status, body = await cancel(http, rid)
    assert status == 503 and isinstance(body["detail"], str)
    emulator.update(error_rates={})
    # None of them reached the request: it is still queued, and cancellable.
    assert (await status_of(http, rid))["status"] == "IN_QUEUE"
    assert await cancel(http, rid) == (202, {"status": "CANCELLATION_REQUESTED"})
    assert emulator.stats()["cancel_requests"] == 4


@pytest.mark.parametrize(("changes", "param", "msg"), [
    ({"duration": "0"}, "duration", "duration must be a whole number of seconds"),
    ({"negative_prompt": "blur"}, "negative_prompt", "Extra inputs are not permitted"),
], ids=["duration-0", "unknown-field"])
async def test_queue_validation_refuses_a_bad_input_once_queued(
        start: Start, changes: dict[str, Any], param: str, msg: str) -> None:
    strict, strict_http = await start()
    at_submit = await call(strict_http, "POST", APP, json=fal_input(**changes))
    assert at_submit[0] == 422 and strict.stats()["queue_refusals"] == 0

    emulator, http = await start(fal_validation="queue")
    rid = await submit(http, fal_input(**changes))
    status, body = await call(http, "GET", f"{REQUESTS}{rid}")
    assert (status, body) == (400, {"detail": "Request is still in progress"})
    first = await status_of(http, rid)
    assert first["status"] == "IN_QUEUE" and first["queue_position"] == 0
    final = await status_of(http, rid)
    assert final["status"] == "COMPLETED" and "queue_position" not in final
    assert final["error"].startswith(msg) and final["error_type"] == "invalid_parameters"
    status, body = await call(http, "GET", f"{REQUESTS}{rid}")
    assert status == 422
    assert body == {"detail": [{"loc": ["body", param], "msg": final["error"],
                                "type": "value_error"}]}
    assert (status, body) == at_submit  # exactly what fal says at submit otherwise
    assert await cancel(http, rid) == (400, {"status": "ALREADY_COMPLETED"})

    stats = emulator.stats()
    assert (stats["creation_requests"], stats["accepted_tasks"], stats["queue_refusals"]) == (
        1, 0, 1)
    assert stats["credits_reserved"] == 0 and stats["renders"] == 0
    assert stats["polls_per_task"] == {rid: 2}
    assert emulator.core.board.named(rid) is None  # not a task: it has no valid creation


async def test_queue_validation_cancel_while_it_reads_in_queue(start: Start) -> None:
    emulator, http = await start(fal_validation="queue")
    rid = await submit(http, fal_input(duration="0"))
    assert await cancel(http, rid) == (202, {"status": "CANCELLATION_REQUESTED"})
    done = await status_of(http, rid)
    assert done["status"] == "COMPLETED" and done["error"] == CANCELLED
    assert done["error_type"] == "request_cancelled"
    status, body = await call(http, "GET", f"{REQUESTS}{rid}")
    assert status >= 400 and status != 422 and body == {"detail": CANCELLED}
    assert await cancel(http, rid) == (400, {"status": "ALREADY_COMPLETED"})
    stats = emulator.stats()
    assert (stats["cancel_requests"], stats["polls"], stats["accepted_tasks"]) == (2, 1, 0)


async def test_queue_validation_renders_a_valid_input_as_before(start: Start) -> None:
    emulator, http = await start(fal_validation="queue")
    rid = await submit(http, fal_input())
    done = await until(http, rid, "COMPLETED")
    assert "error" not in done
    status, body = await call(http, "GET", f"{REQUESTS}{rid}")
    assert status == 200 and body["video"]["content_type"] == "video/mp4"
    async with http.get(body["video"]["url"]) as response:
        video = await response.read()
    assert response.status == 200 and len(video) == body["video"]["file_size"] > 1000
    stats = emulator.stats()
    assert (stats["accepted_tasks"], stats["queue_refusals"], stats["renders"]) == (1, 0, 1)


async def test_queue_validation_is_ignored_by_the_gateway_format(start: Start) -> None:
    emulator, http = await start("gateway", fal_validation="queue")
    status, body = await call(http, "POST", "/v1/videos/generations",
                              json=payload(duration=0))
    assert status == 400 and body["error"]["param"] == "duration"
    assert emulator.stats()["queue_refusals"] == 0


def test_fal_validation_accepts_its_two_values_only() -> None:
    assert EmulatorSettings().fal_validation == "submit"
    assert EmulatorSettings.from_mapping({"fal_validation": "queue"}).fal_validation == "queue"
    with pytest.raises(ValueError, match="fal_validation must be one of submit, queue"):
        EmulatorSettings.from_mapping({"fal_validation": "later"})
