"""The emulator speaking the official Kling API (docs/providers.md), on the same task board.

A Kling creation body is read back into the gateway's canonical body and checked by the
same :func:`~runner.emulator.validation.validate_creation`, then admitted as every format
is (:func:`~runner.emulator.app.admit`: concurrency cap, credits, the reset fault), so the
same faults, real videos and stats apply. What is Kling's own:

* auth: a JWT (HS256) checked against ``api_key`` (the *secret* key) with its ``exp`` and
  ``nbf``; codes 1001 no header, 1002 bad token, 1004 expired;
* answers ``{code, message, request_id, data}`` with ``code`` 0; task ids are Kling's long
  numbers; statuses ``submitted | processing | succeed | failed``; no progress at all;
  ``final_unit_deduction`` as a string and times in milliseconds, as Kling gives them;
* ``external_task_id``: unique per account (a second creation with a taken one is refused
  with code 1201); ``GET /v1/videos/omni-video/<id>`` finds a task by Kling's id or by it;
* with ``accounts`` listed, a task is the account's whose secret key signed the token that
  created it: its id (or external id) asked with another account's token is 1203 not found,
  and each account has its own external ids and its own concurrency (1303 past it);
* errors by code (the HTTP status beside it): 1302 rate limit and 1303 concurrency (429),
  1102 resource pack used up (a 429 too: a client reading only the status would back off
  forever instead of stopping), 1201 bad parameter (400), 1203 not found (404), 5000-5002
  server (500/502/503).
"""

from __future__ import annotations

import re
import secrets
import time
import warnings
from typing import Any

import jwt
from aiohttp import web

from runner.core.model import MODEL_ID
from runner.emulator.app import (
    CORE,
    UPLOAD_PREFIX,
    EmulatorCore,
    WireFormat,
    account_label,
    admit,
    json_body,
    owned,
)
from runner.emulator.responses import ApiError, bad_request
from runner.emulator.tasks import Task
from runner.emulator.validation import validate_creation

CREATE_PATH = "/v1/videos/omni-video"
# (account label or None for the default account, external id) -> board id: each account
# has its own external ids, as they are "unique per account".
EXTERNAL_IDS: web.AppKey[dict[tuple[str | None, str], str]] = web.AppKey(
    "kling_external_ids", dict)
# Kling's own task id is the board's name of the task, both ways (TaskBoard.name): answers
# and result links carry it. Board id -> external id or None: answers are made per poll.
EXTERNAL_OF: web.AppKey[dict[str, str | None]] = web.AppKey("kling_external_of", dict)
MODES = {"std": "720p", "pro": "1080p"}
STATUS_WORDS = {"pending": "submitted", "processing": "processing", "completed": "succeed",
                "failed": "failed"}
_GATEWAY_TO_KLING = {"concurrency_limit_exceeded": 1303, "insufficient_quota": 1102,
                     "duplicate_external_task_id": 1201, "missing_api_key": 1001,
                     "invalid_api_key": 1002, "expired_token": 1004, "task_not_found": 1203}
_BY_STATUS = {400: 1201, 401: 1000, 402: 1102, 403: 1103, 404: 1203, 413: 1201, 429: 1302,
              500: 5000, 502: 5001, 503: 5002}
_REF = re.compile(r"<<<(image|video)_(\d+)>>>")
TOP_FIELDS = frozenset({"model_name", "prompt", "image_list", "video_list", "element_list",
                        "mode", "aspect_ratio", "duration", "sound", "callback_url",
                        "external_task_id", "multi_shot", "shot_type", "multi_prompt"})


def respond(exc: ApiError) -> web.Response:
    """An error in Kling's shape: ``{code, message, request_id}`` with a numeric code."""
    code = _GATEWAY_TO_KLING.get(exc.code or "", _BY_STATUS.get(exc.status, 5000))
    status = 429 if code == 1102 else exc.status
    body = {"code": code, "message": exc.message, "request_id": _request_id()}
    return web.json_response(body, status=status, headers=exc.headers)


def _request_id() -> str:
    return secrets.token_hex(16)


def authenticate(request: web.Request, secret: str | None) -> None:
    """The bearer JWT, signed with the secret key (any key when ``secret`` is None)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Authorization is empty.", code="missing_api_key")
    try:
        with warnings.catch_warnings():  # a short test key is no reason for a warning
            warnings.simplefilter("ignore")
            claims = _claims(token, secret)
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "Authorization token has expired.", code="expired_token") from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "Authorization is invalid.", code="invalid_api_key") from None
    if not isinstance(claims.get("iss"), str) or not claims["iss"]:
        raise ApiError(401, "Authorization is invalid.", code="invalid_api_key")


def _claims(token: str, secret: str | None) -> dict[str, Any]:
    """The token's claims, checked (its signature only when the emulator has a key)."""
    if jwt.get_unverified_header(token).get("alg") != "HS256":
        raise jwt.InvalidTokenError("alg")
    if secret is None:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    return dict(jwt.decode(token, secret, algorithms=["HS256"],
                           options={"require": ["iss", "exp", "nbf"]}))


def _count(core: EmulatorCore, request: web.Request) -> None:
    """Creations and queries; polls per task by Kling's task id (the client's, as fal's are
    by request id and the gateway's by its task id)."""
    if request.method == "POST" and request.path == CREATE_PATH:
        core.stats.creation_requests += 1
    elif request.method == "GET" and request.path.startswith(CREATE_PATH + "/"):
        core.stats.polls += 1
        kling_id = request.path.rsplit("/", 1)[-1]
        if core.board.named(kling_id) is not None:
            core.stats.polls_per_task[kling_id] += 1


WIRE = WireFormat("kling", ("/v1/", UPLOAD_PREFIX),
                  creating=lambda request: request.path == CREATE_PATH,
                  count=_count, authenticate=authenticate, respond=respond)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", name)
    return value


def canonical(body: Any) -> dict[str, Any]:
    """The gateway's canonical body of a Kling creation (ApiError 400 when it is not one)."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    unknown = sorted(set(body) - TOP_FIELDS)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]}", unknown[0])
    if "element_list" in body:
        raise bad_request("element_list: the emulator knows no registered element",
                          "element_list")
    duration = _text(body.get("duration", "5"), "duration")
    if not duration.isdigit():
        raise bad_request("duration must be a string of whole seconds, such as \"5\"",
                          "duration")
    mode = body.get("mode", "std")
    if mode not in MODES:
        raise bad_request("mode must be std or pro", "mode")
    sound = body.get("sound", "off")
    if sound not in ("on", "off"):
        raise bad_request("sound must be on or off", "sound")
    out: dict[str, Any] = {"model": MODEL_ID, "resolution": MODES[mode],
                           "duration": int(duration), "generate_audio": sound == "on"}
    if "aspect_ratio" in body:
        out["aspect_ratio"] = body["aspect_ratio"]
    images, frames = _images(body.get("image_list", []))
    out.update(frames)
    videos = _videos(body.get("video_list", []))
    if images:
        out["image_urls"] = images
    if videos:
        out["elements"] = [{"video_url": url} for url in videos]
    if body.get("multi_shot"):
        if body.get("shot_type") != "customize":
            raise bad_request("shot_type must be customize with multi_shot", "shot_type")
        out["multi_prompt"] = _segments(body.get("multi_prompt"), images)
        out["shot_type"] = "customize"
    else:
        out["prompt"] = _references(_text(body.get("prompt"), "prompt"), images, "prompt")
    if "callback_url" in body:
        out["callback_url"] = body["callback_url"]
    return out


def _images(value: Any) -> tuple[list[str], dict[str, str]]:
    if not isinstance(value, list):
        raise bad_request("image_list must be a list", "image_list")
    images: list[str] = []
    frames: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("image_url"), str):
            raise bad_request("each image_list item needs an image_url", "image_list")
        kind = item.get("type")
        if kind is None:
            images.append(item["image_url"])
        elif kind in ("first_frame", "end_frame"):
            frames["start_image_url" if kind == "first_frame" else "end_image_url"] = \
                item["image_url"]
        else:
            raise bad_request("image_list type must be first_frame or end_frame", "image_list")
    return images, frames


def _videos(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise bad_request("video_list must be a list", "video_list")
    urls = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("video_url"), str) or \
                item.get("refer_type", "feature") not in ("feature", "base"):
            raise bad_request("each video_list item needs a video_url and a refer_type of "
                              "feature or base", "video_list")
        urls.append(item["video_url"])
    return urls


def _segments(value: Any, images: list[str]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise bad_request("multi_prompt must be a non-empty list", "multi_prompt")
    segments = []
    for position, item in enumerate(value, start=1):
        if not isinstance(item, dict) or item.get("index") != position:
            raise bad_request("multi_prompt items need index 1, 2, ... in order",
                              "multi_prompt")
        prompt = _text(item.get("prompt"), "multi_prompt")
        if len(prompt) > 512:
            raise bad_request("a multi_prompt segment is at most 512 characters",
                              "multi_prompt")
        seconds = _text(item.get("duration"), "multi_prompt")
        if not seconds.isdigit():
            raise bad_request("multi_prompt durations are strings of whole seconds",
                              "multi_prompt")
        segments.append({"prompt": _references(prompt, images, "multi_prompt"),
                         "duration": int(seconds)})
    return segments


def _references(text: str, images: list[str], param: str) -> str:
    """Kling's ``<<<image_n>>>`` as the gateway's ``@Image<n>`` (videos as elements)."""
    def swap(match: re.Match[str]) -> str:
        number = int(match.group(2))
        if match.group(1) == "image":
            if not 1 <= number <= len(images):
                raise bad_request(f"<<<image_{number}>>> is referenced but image_list has "
                                  f"{len(images)} reference images", param)
            return f"@Image{number}"
        return f"@Element{number}"

    return _REF.sub(swap, text)


def describe(core: EmulatorCore, request: web.Request, task: Task) -> dict[str, Any]:
    """A task as Kling answers it: no progress, units as a string, times in milliseconds."""
    settings = core.settings
    gateway = core.board.describe(task, core.now(), settings.link_ttl)
    data: dict[str, Any] = {
        "task_id": core.board.public_name(task),
        "task_status": STATUS_WORDS[gateway["status"]],
        "task_status_msg": gateway.get("error", {}).get("message", ""),
        "task_info": {},
        "final_unit_deduction": f"{gateway['usage']['credits_reserved']}",
        "created_at": task.created * 1000,
        "updated_at": int(time.time() * 1000),
    }
    external = request.app[EXTERNAL_OF][task.task_id]
    if external is not None:
        data["task_info"]["external_task_id"] = external
    if gateway["status"] == "completed":
        data["task_result"] = {"videos": [{"id": secrets.token_hex(8),
                                           "url": gateway["results"][0],
                                           "duration": str(task.creation.duration)}]}
    return {"code": 0, "message": "SUCCEED", "request_id": _request_id(), "data": data}


def _name(app: web.Application, task: Task, external: str | None) -> None:
    """Give an admitted task its Kling id (a long number), and remember the client's
    external id (in its account's)."""
    app[CORE].board.name(task, str(secrets.randbelow(9 * 10**17) + 10**17))
    app[EXTERNAL_OF][task.task_id] = external
    if external is not None:
        app[EXTERNAL_IDS][(task.account, external)] = task.task_id


async def create(request: web.Request) -> web.StreamResponse:
    """POST /v1/videos/omni-video."""
    core = request.app[CORE]
    body = await json_body(request)
    gateway_body = canonical(body)
    creation = validate_creation(gateway_body)
    external = body.get("external_task_id")
    if external is not None:
        external = _text(external, "external_task_id")
        if (account_label(request), external) in request.app[EXTERNAL_IDS]:
            raise ApiError(400, f"external_task_id {external} already exists",
                           code="duplicate_external_task_id", param="external_task_id")
    task, answered = admit(core, request, creation, gateway_body)
    if task is not None:
        _name(request.app, task, external)
    if not answered:
        return web.Response(status=500)  # never reaches the client
    assert task is not None
    return web.json_response(describe(core, request, task))


async def query(request: web.Request) -> web.StreamResponse:
    """GET /v1/videos/omni-video/{id}: by Kling's task id or by the client's external id."""
    core = request.app[CORE]
    wanted = request.match_info["task_id"]
    task = core.board.named(wanted)
    external = request.app[EXTERNAL_IDS].get((account_label(request), wanted))
    if task is None and external is not None:
        task = core.board.get(external)
    if task is None or not owned(request, task.account):
        raise ApiError(404, f"task {wanted[:80]} does not exist", code="task_not_found")
    return web.json_response(describe(core, request, task))


def add_routes(app: web.Application) -> None:
    """Kling's routes (the shared ones are added by :func:`runner.emulator.routes.build_app`)."""
    app[EXTERNAL_IDS] = {}
    app[EXTERNAL_OF] = {}
    app.router.add_post(CREATE_PATH, create)
    app.router.add_get(CREATE_PATH + "/{task_id}", query)

