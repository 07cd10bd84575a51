"""The official Kling API (docs/providers.md, "Official Kling API") behind the scheduler's Protocol.

Translation, both ways, in pure functions (the golden files in ``tests/providers/golden/``
are written from docs/providers.md and compared with them); :class:`~.kling_client.KlingClient`
is the :class:`~runner.wire.protocol.Gateway` that sends them.

The body: ``model_name``; ``prompt`` with references as ``<<<image_n>>>``/``<<<video_n>>>``;
``image_list`` (the shot's images, then each image element's frontal and reference images,
then the first and end frames with their ``type``); ``video_list`` for video subjects
(``refer_type: feature``); ``mode`` from the resolution (720p ``std``, 1080p ``pro``; 4k is
no documented mode and :mod:`.limits` refuses it); ``duration`` and each segment's as a
string; ``sound: on|off``; multi-shot as ``multi_shot: true, shot_type: customize,
multi_prompt: [{index, prompt, duration}]``; and ``external_task_id``.

Kling documents no way to send a subject drawn from images inline (``element_list`` holds
ids of subjects registered beforehand), so an image element is sent as reference images and
``@Element<n>`` points at its frontal image; ``validate`` warns about it.

Answers are ``{code, message, request_id, data}``; ``code`` 0 is success, whatever the HTTP
status. Errors are read by ``code`` first (1302 rate limit and 1303 concurrency are 429s that
lower the pace; 1102, the resource pack used up, is out of credits even when it comes as a
429; 1301 content refused is permanent; 5000-5002 transient; 1000-1004 the key), then by the
HTTP status as the gateway's table reads it.

Credentials (:mod:`.kling_client`): a JWT made from the access and secret keys. A creation
carries ``external_task_id`` (the scheduler derives it from durable state,
:func:`runner.scheduler.lost.client_task_id`): a creation whose answer was lost is looked up
by it, so it is never *ambiguous* here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.core import errors
from runner.core.model import MODEL_ID
from runner.wire.common import (
    CLIENT_TASK_ID,
    answer_object,
    failure_code,
    passthrough,
    rewrite_references,
    text_of,
)
from runner.wire.parse import (
    MAX_CREDITS,
    excerpt,
    parse_json_object,
    parse_retry_after,
    reading,
)
from runner.wire.protocol import TaskState

CREATE_PATH = "/v1/videos/omni-video"
MODEL_NAME = "kling-v3-omni"  # O3, as seen (docs/providers.md); a non-default api.model wins
MODES = {"720p": "std", "1080p": "pro"}
MAX_ITEMS, MAX_ITEMS_WITH_VIDEO = 7, 4
MAX_SEGMENT_CHARS, MAX_SEGMENTS = 512, 6
STATUSES = {"submitted": "pending", "processing": "processing", "succeed": "completed",
            "failed": "failed"}
AUTH_CODES = range(1000, 1005)
RATE_CODES = frozenset({1302, 1303})
QUOTA_CODES = frozenset({1102})
REFUSED_CODES = frozenset({1301})
SERVER_CODES = range(5000, 5003)
NOT_FOUND_CODES = frozenset({1203})


# --------------------------------------------------------------------------- the body
def translate(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The Kling creation body of a canonical payload
    (:func:`runner.wire.payload.build_payload`)."""
    images: list[dict[str, Any]] = []
    image_refs: dict[int, str] = {}
    element_refs: dict[int, str] = {}
    videos: list[dict[str, Any]] = []
    for n, url in enumerate(payload.get("image_urls") or (), start=1):
        images.append({"image_url": url})
        image_refs[n] = f"<<<image_{len(images)}>>>"
    for n, element in enumerate(payload.get("elements") or (), start=1):
        if "video_url" in element:
            videos.append({"video_url": element["video_url"], "refer_type": "feature"})
            element_refs[n] = f"<<<video_{len(videos)}>>>"
            continue
        images.append({"image_url": element["frontal_image_url"]})
        element_refs[n] = f"<<<image_{len(images)}>>>"
        images.extend({"image_url": url} for url in element.get("reference_image_urls") or ())
    for field, kind in (("start_image_url", "first_frame"), ("end_image_url", "end_frame")):
        if payload.get(field):
            images.append({"image_url": payload[field], "type": kind})

    model = payload.get("model", MODEL_ID)
    body: dict[str, Any] = {"model_name": MODEL_NAME if model == MODEL_ID else model}
    if payload.get("multi_prompt"):
        body["multi_shot"] = True
        body["shot_type"] = "customize"
        body["multi_prompt"] = [
            {"index": index, "prompt": rewrite_references(seg["prompt"], image_refs,
                                                          element_refs),
             "duration": str(seg["duration"])}
            for index, seg in enumerate(payload["multi_prompt"], start=1)]
    else:
        body["prompt"] = rewrite_references(payload.get("prompt") or "", image_refs,
                                            element_refs)
    if images:
        body["image_list"] = images
    if videos:
        body["video_list"] = videos
    resolution = payload.get("resolution", "720p")
    body["mode"] = MODES.get(resolution, resolution)
    body["aspect_ratio"] = payload.get("aspect_ratio", "16:9")
    body["duration"] = str(payload.get("duration", 5))
    body["sound"] = "on" if payload.get("generate_audio") else "off"
    if payload.get("callback_url"):
        body["callback_url"] = payload["callback_url"]
    if payload.get(CLIENT_TASK_ID):
        body["external_task_id"] = payload[CLIENT_TASK_ID]
    body.update(passthrough(payload))
    return body


# --------------------------------------------------------------------------- answers
def error_of(status: int, body: bytes, *, operation: str, retry_after: str | None = None,
             task_id: str | None = None) -> errors.GatewayError:
    """shotrun's error for a Kling answer that is not a success (any HTTP status)."""
    try:
        data = parse_json_object(body, what=f"{operation} answer")
    except errors.MalformedResponse:
        data = {}
    code = data.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        if 200 <= status < 300:
            return errors.MalformedResponse(f"{operation}: answer without a numeric 'code': "
                                     f"{excerpt(body)}", status=status)
        from runner.wire.translate import http_error  # aiohttp: only a client gets here

        return http_error(status, body, operation=operation, retry_after=retry_after,
                          task_id=task_id)
    message = text_of(data.get("message")) or "no message"
    prefix = f"{operation}: Kling code {code}"
    kw: dict[str, Any] = {"code": str(code), "status": status}
    if code in AUTH_CODES:
        return errors.AuthenticationFailed(f"{prefix}, the Kling API refused the API key "
                                    f"({message})", **kw)
    if code in QUOTA_CODES:
        return errors.QuotaExhausted(f"{prefix}, the resource pack is used up ({message})", **kw)
    if code in RATE_CODES:
        wait = parse_retry_after(retry_after)
        what = "rate limited" if code == 1302 else "over the resource pack's concurrency"
        return errors.RateLimited(f"{prefix}, {what} ({message})", retry_after=wait, **kw)
    refused = {**kw, "status": 400} if 200 <= status < 300 else kw  # a refusal carried by
    # a 200 is about the request, as a 400 is: callers (the probe) read it as one
    if code in REFUSED_CODES:
        return errors.PermanentGatewayError(f"{prefix}, content refused ({message})",
                                            **refused)
    if code in SERVER_CODES or status >= 500 or status == 408:
        return errors.TransientGatewayError(f"{prefix}, Kling server trouble ({message})",
                                            **kw)
    if code in NOT_FOUND_CODES and task_id is not None:
        return errors.PermanentGatewayError(f"{prefix}, task {task_id} is unknown "
                                            f"({message})", **kw)
    return errors.PermanentGatewayError(f"{prefix}, request refused ({message})", **refused)


def task_state(body: bytes, *, what: str) -> TaskState:
    """A creation or query answer (``code`` 0) as a :class:`TaskState`."""
    return parse_task(body, what=what)[0]


def parse_task(body: bytes, *, what: str) -> tuple[TaskState, dict[str, Any]]:
    """:func:`task_state`, with the answer's JSON object as Kling sent it (``shotrun
    probe`` reports the fields a provider really answers with)."""
    data = answer_object(body, what)
    if data.get("code") != 0:
        raise error_of(200, body, operation=what)
    task = data.get("data")
    if not isinstance(task, dict):
        raise errors.MalformedResponse(f"{what}: no 'data' object in the answer", status=200)
    task_id = task.get("task_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id:
        raise errors.MalformedResponse(f"{what}: no 'data.task_id' in the answer", status=200)
    word = task.get("task_status")
    if word not in STATUSES:
        raise errors.MalformedResponse(f"{what}: unknown task_status {excerpt(str(word))}",
                                status=200)
    status = STATUSES[word]
    results: tuple[str, ...] = ()
    if status == "completed":
        videos = (task.get("task_result") or {}).get("videos")
        urls = [v.get("url") for v in videos if isinstance(v, dict)] if isinstance(
            videos, list) else []
        results = tuple(u for u in urls if isinstance(u, str) and u)
        if not results:
            raise errors.MalformedResponse(f"{what}: task {task_id} succeeded but has no video URL",
                                    status=200)
    message = text_of(task.get("task_status_msg")) if status == "failed" else None
    return TaskState(
        task_id=task_id, status=status, progress=100 if status == "completed" else 0,
        results=results,
        error_code=failure_code(message) if status == "failed" else None,
        error_message=(message or "the task failed") if status == "failed" else None,
        credits_reserved=reading(task.get("final_unit_deduction"), field="final_unit_deduction",
                                 what=what, limit=MAX_CREDITS),
    ), data
