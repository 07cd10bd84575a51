"""The emulator speaking fal.ai's queue API (docs/providers.md), on the same task board.

A fal input is read back into the gateway's canonical body (the tier from the app, the
string durations as numbers), checked by the same validation and admitted as every format
is, so the same faults, real videos and stats apply. What is fal's own:

* auth ``Authorization: Key <key>``; errors as ``{"detail": ...}`` (a list of
  ``{loc, msg, type}`` for a refused input, 422), with fal's statuses: out of credits is a
  403 saying the balance is exhausted (not a 402), 429 rate limited, 5xx trouble;
* request ids are UUIDs, as fal's are (the board's gateway-style id is never shown, not
  even in result links: :meth:`~runner.emulator.tasks.TaskBoard.name`);
* submit answers ``{request_id, status_url, response_url, cancel_url}`` and nothing about the
  task; status is ``IN_QUEUE`` with ``queue_position``, ``IN_PROGRESS``, ``COMPLETED`` (with
  ``error`` when the request failed), never a percentage; the result is ``{video: {url,
  content_type, file_name, file_size}}``;
* ``duration`` must be a string (``"5"``): a number is refused, as fal's schema refuses it;
* cancel ``PUT .../requests/<id>/cancel``: a request still ``IN_QUEUE`` answers 202
  ``{"status": "CANCELLATION_REQUESTED"}`` and is taken out of the queue (it then reads
  ``COMPLETED`` with an ``error``, never renders and bills nothing); one running or done
  answers 400 ``{"status": "ALREADY_COMPLETED"}``. For a running request fal only signals
  its app, which decides whether to stop: the emulator plays an app that never does, so a
  client cannot come to count on a cancel it might not get;
* ``fal_validation: queue`` plays an app that checks its input only once queued: any JSON
  input gets a ``request_id``; a bad one reads ``IN_QUEUE`` once, then ``COMPLETED`` with the
  refusal as ``error``, and its result answers the 422 the submit gives otherwise;
* with ``accounts`` listed, a request is its key's account's: asked about (status, result,
  cancel) with another account's key it is 404 ``Request not found``; each account's own
  concurrency cap answers 429 past it, as the emulator-wide one does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from runner.core.errors import PERMANENT_TASK_CODES
from runner.core.model import MODEL_ID
from runner.emulator.app import (
    CORE,
    UPLOAD_PREFIX,
    EmulatorCore,
    WireFormat,
    account_label,
    admit,
    admit_with,
    json_body,
    owned,
)
from runner.emulator.responses import ApiError
from runner.emulator.tasks import FAILURE_MESSAGES, Task
from runner.emulator.validation import validate_creation

QUEUE = "/fal-ai/kling-video"
TIERS = {"standard": "720p", "pro": "1080p", "4k": "4k"}
APP_PATH = QUEUE + "/o3/{tier}/reference-to-video"
REQUESTS = QUEUE + "/requests/"
_SAME = ("prompt", "shot_type", "generate_audio", "start_image_url", "end_image_url",
         "image_urls", "elements", "aspect_ratio")
STATUS_WORDS = {"pending": "IN_QUEUE", "processing": "IN_PROGRESS", "completed": "COMPLETED",
                "failed": "COMPLETED"}
CANCELLED = "request_cancelled"
REFUSED = "invalid_parameters"  # the error_type of an input refused once queued


@dataclass
class Late:
    """A request whose input is refused only once queued (``fal_validation: queue``).

    Not a task on the board: it has no valid creation, so it never renders, holds no slot
    and costs nothing. It reads ``IN_QUEUE`` to its first status query (``seen``), then
    ``COMPLETED`` with the refusal, unless a cancel took it out of the queue before.
    """

    request_id: str
    refusal: ApiError
    started: float  # loop clock: its place in the queue
    seen: bool = False
    cancelled: bool = False
    account: str | None = None  # the label of the listed account that submitted it


LATE: web.AppKey[dict[str, Late]] = web.AppKey("fal_late_refusals", dict)


def respond(exc: ApiError) -> web.Response:
    """An error as fal answers it."""
    status, detail = exc.status, exc.message
    if exc.code == "insufficient_quota" or status == 402:
        status = 403
        detail = ("User is locked. Reason: Exhausted balance. Top up your balance at "
                  "fal.ai/dashboard/billing.")
    if status == 400 and exc.param is not None:
        status = 422
        body: dict[str, Any] = {"detail": [{"loc": ["body", exc.param], "msg": detail,
                                            "type": "value_error"}]}
    else:
        body = {"detail": detail}
    return web.json_response(body, status=status, headers=exc.headers)


def authenticate(request: web.Request, expected: str | None) -> None:
    """``Authorization: Key <key>`` (any key when ``expected`` is None)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Key" or not key.strip():
        raise ApiError(401, "Missing authorization: send Authorization: Key <FAL_KEY>.",
                       code="missing_api_key")
    if expected is not None and key.strip() != expected:
        raise ApiError(401, "No user found for Key ID and Secret.", code="invalid_api_key")


def new_request_id() -> str:
    """A fal request id: a UUID (``"3b5c...-..."``), as fal.ai hands out."""
    return str(uuid.uuid4())


def _count(core: EmulatorCore, request: web.Request) -> None:
    """Creations and polls as for every format; a cancel is neither (``cancel_requests``).

    Polls per task are counted by the request id, the id the client knows (a request
    refused once queued has no board task, only that id).
    """
    if request.method == "POST" and not request.path.startswith(REQUESTS) and \
            not request.path.startswith(UPLOAD_PREFIX):
        core.stats.creation_requests += 1
    elif request.method == "GET" and request.path.endswith("/status"):
        core.stats.polls += 1
        request_id = request.path[len(REQUESTS):].split("/", 1)[0]
        if core.board.named(request_id) is not None or request_id in request.app[LATE]:
            core.stats.polls_per_task[request_id] += 1
    elif request.method == "PUT" and request.path.endswith("/cancel"):
        core.stats.cancel_requests += 1


def _creating(request: web.Request) -> bool:
    return request.method == "POST" and request.path.startswith(QUEUE + "/o3/")


WIRE = WireFormat("fal", (QUEUE + "/", UPLOAD_PREFIX), creating=_creating, count=_count,
                  authenticate=authenticate, respond=respond)


def _seconds(value: Any, param: str) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise ApiError(400, "Input should be a string of whole seconds, such as '5'",
                       param=param)
    return int(value)


def canonical(body: Any, resolution: str) -> dict[str, Any]:
    """The gateway's canonical body of a fal input (ApiError 422 when it is not one)."""
    if not isinstance(body, dict):
        raise ApiError(400, "Input should be a JSON object", param="body")
    known = {*_SAME, "multi_prompt", "duration"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(400, "Extra inputs are not permitted", param=unknown[0])
    out: dict[str, Any] = {"model": MODEL_ID, "resolution": resolution}
    out.update({key: body[key] for key in _SAME if key in body})
    out["duration"] = _seconds(body.get("duration", "5"), "duration")
    if "multi_prompt" in body:
        segments = body["multi_prompt"]
        if not isinstance(segments, list):
            raise ApiError(400, "Input should be a valid list", param="multi_prompt")
        out["multi_prompt"] = [
            {"prompt": item.get("prompt"), "duration": _seconds(item.get("duration"),
                                                                "multi_prompt")}
            if isinstance(item, dict) else item for item in segments]
    return out


def _urls(request: web.Request, request_id: str) -> dict[str, str]:
    base = f"{request.app[CORE].board.base_url}{REQUESTS}{request_id}"
    return {"status_url": f"{base}/status", "response_url": base,
            "cancel_url": f"{base}/cancel"}


async def submit(request: web.Request) -> web.StreamResponse:
    """POST /fal-ai/kling-video/o3/{tier}/reference-to-video."""
    core = request.app[CORE]
    resolution = TIERS.get(request.match_info["tier"])
    if resolution is None:
        raise ApiError(404, f"Application {request.path[1:]} not found")
    raw = await json_body(request)  # not JSON: refused at submit in either mode
    try:
        body = canonical(raw, resolution)
        creation = validate_creation(body)
    except ApiError as refusal:
        if core.settings.fal_validation != "queue":
            raise
        return _queue_refused(core, request, refusal)
    task, answered = admit(core, request, creation, body)
    if task is not None:  # named even when its answer is lost: the request exists
        core.board.name(task, new_request_id())
    if not answered:
        return web.Response(status=500)  # never reaches the client
    assert task is not None
    request_id = core.board.public_name(task)
    return web.json_response({"request_id": request_id, **_urls(request, request_id)})


def _queue_refused(core: EmulatorCore, request: web.Request, refusal: ApiError
                   ) -> web.StreamResponse:
    """Queue an input that will be refused once "run": answered as a good submission is
    (the account's limits and lost answers too), so only its status tells."""
    lates = request.app[LATE]

    def make() -> Late:
        late = Late(new_request_id(), refusal, core.now(), account=account_label(request))
        lates[late.request_id] = late
        core.stats.queue_refusals += 1
        return late

    late, answered = admit_with(core, request, 0.0, make)
    if not answered:
        return web.Response(status=500)  # never reaches the client
    assert late is not None
    return web.json_response({"request_id": late.request_id,
                              **_urls(request, late.request_id)})


def _task(request: web.Request) -> Task:
    task = request.app[CORE].board.named(request.match_info["request_id"])
    if task is None or not owned(request, task.account):
        raise ApiError(404, "Request not found")
    return task


def _late(request: web.Request) -> Late | None:
    """The request refused once queued that the id names, if the requester's account's."""
    late = request.app[LATE].get(request.match_info["request_id"])
    return late if late is not None and owned(request, late.account) else None


def _failed(word: str, code: str, message: str) -> dict[str, Any]:
    return {"status": word, "error": message, "error_type": code}


async def status(request: web.Request) -> web.StreamResponse:
    """GET .../requests/{id}/status."""
    core = request.app[CORE]
    now = core.now()
    late = _late(request)
    if late is not None:
        urls = _urls(request, late.request_id)
        if late.cancelled:
            return web.json_response({**_failed("COMPLETED", CANCELLED,
                                                FAILURE_MESSAGES[CANCELLED]), **urls})
        if not late.seen:
            late.seen = True
            return web.json_response({"status": "IN_QUEUE", **urls, "queue_position":
                                      core.board.queued_before(late.started, now)})
        return web.json_response({**_failed("COMPLETED", REFUSED, late.refusal.message),
                                  **urls})
    task = _task(request)
    word, _ = task.status(now)
    body: dict[str, Any] = {"status": STATUS_WORDS[word],
                            **_urls(request, core.board.public_name(task))}
    if word == "pending":
        body["queue_position"] = core.board.queued_before(task.started, now)
    elif word == "failed":
        code, message = task.failure()
        body.update(_failed(STATUS_WORDS[word], code, message))
    return web.json_response(body)


def _failed_result(code: str, message: str) -> web.Response:
    """The result of a failed request: a refusal for a permanent code, else trouble."""
    if code in PERMANENT_TASK_CODES:
        return respond(ApiError(400, message, param="prompt"))
    return respond(ApiError(500, message))


async def result(request: web.Request) -> web.StreamResponse:
    """GET .../requests/{id}: the video of a completed request, or why there is none."""
    core = request.app[CORE]
    late = _late(request)
    if late is not None:
        if late.cancelled:
            return _failed_result(CANCELLED, FAILURE_MESSAGES[CANCELLED])
        if not late.seen:
            raise ApiError(400, "Request is still in progress")
        return respond(late.refusal)  # the very answer the submit gives in "submit" mode
    task = _task(request)
    gateway = core.board.describe(task, core.now(), core.settings.link_ttl)
    if gateway["status"] == "failed":
        return _failed_result(*task.failure())
    if gateway["status"] != "completed":
        raise ApiError(400, "Request is still in progress")
    size = len(task.video or b"")
    return web.json_response({"video": {"url": gateway["results"][0],
                                        "content_type": "video/mp4",
                                        "file_name": f"{core.board.public_name(task)}.mp4",
                                        "file_size": size}})


async def cancel(request: web.Request) -> web.StreamResponse:
    """PUT .../requests/{id}/cancel: 202 when it was still queued, else 400 (see above)."""
    core = request.app[CORE]
    late = _late(request)
    if late is not None:
        queued = not late.seen and not late.cancelled
        late.cancelled = late.cancelled or queued
    else:
        queued = core.board.cancel(_task(request), core.now())
    if queued:
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)
    return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)


def add_routes(app: web.Application) -> None:
    """fal's routes (the shared ones are added by :func:`runner.emulator.routes.build_app`)."""
    app[LATE] = {}
    app.router.add_post(APP_PATH, submit)
    app.router.add_put(REQUESTS + "{request_id}/cancel", cancel)
    app.router.add_get(REQUESTS + "{request_id}/status", status)
    app.router.add_get(REQUESTS + "{request_id}", result)
