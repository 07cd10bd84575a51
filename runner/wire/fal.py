"""fal.ai's queue API (docs/providers.md, "fal.ai") behind the scheduler's Protocol.

Translation in pure functions (golden files in ``tests/providers/golden/``);
:class:`~.fal_client.FalClient` sends them.

The body is the gateway's, nearly: no ``model`` and no ``resolution`` (the tier is the app:
720p the standard app, 1080p the pro one, 4k the 4k variant), ``duration`` as a string
(``"5"``) and each ``multi_prompt`` segment's too, ``callback_url`` as the ``fal_webhook``
query parameter. References stay ``@Image<n>``/``@Element<n>``.

A task is a queue request: submit ``POST /<app>`` -> ``{request_id, ...}``; status ``GET
/<queue>/requests/<id>/status`` -> ``IN_QUEUE`` (with ``queue_position``), ``IN_PROGRESS``,
``COMPLETED``; result ``GET /<queue>/requests/<id>`` -> ``{video: {url, ...}}``. ``<queue>``
is the app's owner and name (``fal-ai/kling-video``) without its sub-path, where fal serves
the requests of every tier, so that a task is found again from its id alone after a
restart. A request that failed is ``COMPLETED`` with an ``error`` (or its result answers an
error): it becomes a failed task whose code is judged from fal's words.

Errors by HTTP status (fal documents no codes): 401 the key; 402, or a 403 saying the
balance is exhausted or the account locked, out of credits; 429 rate limited (Retry-After
honoured); 400/404/422 refused; 5xx transient. The key is sent as ``Authorization: Key
<FAL_KEY>``, to the configured origins only.

fal has no client-chosen task id: a creation whose answer was lost is ambiguous here, as on
the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.core import errors
from runner.wire.common import answer_object, failure_code, passthrough, text_of
from runner.wire.parse import (
    _TASK_ID,
    MAX_QUEUE_POSITION,
    excerpt,
    parse_json_object,
    parse_retry_after,
    reading,
)
from runner.wire.protocol import TaskState

QUEUE = "fal-ai/kling-video"
APPS = {
    "720p": f"{QUEUE}/o3/standard/reference-to-video",
    "1080p": f"{QUEUE}/o3/pro/reference-to-video",
    "4k": f"{QUEUE}/o3/4k/reference-to-video",  # "a 4k variant exists": its name, as read
}
STATUSES = {"IN_QUEUE": "pending", "IN_PROGRESS": "processing", "COMPLETED": "completed"}
_SAME = ("prompt", "shot_type", "generate_audio", "start_image_url", "end_image_url",
         "image_urls", "elements", "aspect_ratio")
_OUT_OF_CREDITS = ("balance", "locked", "exhausted", "credit")


def app_for(resolution: str) -> str:
    """The fal app of a resolution (the tier is the app)."""
    return APPS[resolution]


def translate(payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(app, input JSON) of a canonical payload (:func:`runner.wire.payload.build_payload`)."""
    body: dict[str, Any] = {key: payload[key] for key in _SAME if key in payload}
    if payload.get("multi_prompt"):
        body["multi_prompt"] = [{"prompt": seg["prompt"], "duration": str(seg["duration"])}
                                for seg in payload["multi_prompt"]]
    body["duration"] = str(payload.get("duration", 5))
    body.update(passthrough(payload))
    return app_for(payload.get("resolution", "720p")), body


def error_of(status: int, body: bytes, *, operation: str, retry_after: str | None = None,
             task_id: str | None = None) -> errors.GatewayError:
    """shotrun's error for a fal answer that is not a success."""
    try:
        data: dict[str, Any] = parse_json_object(body, what=f"{operation} answer")
    except errors.MalformedResponse:
        data = {}
    detail = text_of(data.get("detail")) or text_of(data.get("error")) or (
        excerpt(body) if body.strip() else "no error detail")
    prefix = f"{operation}: HTTP {status}"
    kw: dict[str, Any] = {"code": f"http_{status}", "status": status}
    if status == 401:
        return errors.AuthenticationFailed(f"{prefix}, fal.ai refused the API key ({detail})", **kw)
    if status == 402 or (status == 403 and any(w in detail.lower() for w in _OUT_OF_CREDITS)):
        return errors.QuotaExhausted(f"{prefix}, the fal.ai account is out of credits ({detail})",
                              **kw)
    if status == 429:
        wait = parse_retry_after(retry_after)
        return errors.RateLimited(f"{prefix}, rate limited ({detail})", retry_after=wait, **kw)
    if status == 404 and task_id is not None:
        return errors.PermanentGatewayError(f"{prefix}, request {task_id} is unknown ({detail})",
                                     **kw)
    if status == 408 or status >= 500:
        return errors.TransientGatewayError(f"{prefix}, fal.ai trouble, retry later ({detail})",
                                     **kw)
    if 400 <= status < 500:
        return errors.PermanentGatewayError(f"{prefix}, request refused ({detail})",
                                            param=refused_field(data.get("detail")), **kw)
    return errors.MalformedResponse(f"{prefix}, not an answer fal.ai documents ({detail})", **kw)


def refused_field(detail: Any) -> str | None:
    """The input field a validation refusal names: the first ``loc`` of fal's
    ``[{loc: ["body", <field>, ...], msg, type}]`` that points into the body (the FastAPI
    convention fal's apps follow), or None."""
    if not isinstance(detail, list):
        return None
    for item in detail:
        loc = item.get("loc") if isinstance(item, dict) else None
        if isinstance(loc, list) and len(loc) >= 2 and loc[0] == "body" and \
                isinstance(loc[1], str):
            return loc[1]
    return None


def submit_answer(body: bytes, *, what: str) -> tuple[str, dict[str, Any]]:
    """The ``request_id`` of a submit answer, and the answer's JSON object."""
    data = answer_object(body, what)
    found = data.get("request_id")
    if not isinstance(found, str) or not _TASK_ID.fullmatch(found):
        raise errors.MalformedResponse(f"{what}: no usable 'request_id' in the answer: "
                                f"{excerpt(body)}", status=200)
    return found, data


def status_of(body: bytes, task_id: str, *, what: str) -> TaskState | None:
    """The state a status answer gives, or None when it is COMPLETED (the result decides)."""
    data = answer_object(body, what)
    word = data.get("status")
    if word not in STATUSES:
        raise errors.MalformedResponse(f"{what}: unknown status {excerpt(str(word))}")
    error = text_of(data.get("error"))
    if word == "COMPLETED" and error:
        return TaskState(task_id, "failed", error_code=failure_code(
            f"{text_of(data.get('error_type')) or ''} {error}"), error_message=error)
    if word == "COMPLETED":
        return None
    position = reading(data.get("queue_position"), field="queue_position", what=what,
                       limit=MAX_QUEUE_POSITION)
    queued = int(position) if position is not None and position.is_integer() else None
    return TaskState(task_id, STATUSES[word], queue_position=queued)


def result_of(body: bytes, task_id: str, *, what: str) -> TaskState:
    """The completed state a result answer gives (its video's URL)."""
    data = answer_object(body, what)
    video = data.get("video")
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str) or not url:
        raise errors.MalformedResponse(f"{what}: no 'video.url' in the result: {excerpt(body)}")
    return TaskState(task_id, "completed", progress=100, results=(url,))
