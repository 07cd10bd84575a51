"""The emulator's HTTP surface: the gateway's documented routes, plus a stats route.

One middleware does what every API route shares, in the gateway's order: count the request,
check the bearer key (401), maybe inject a fault (an HTTP error or a reset), and turn any
:class:`ApiError` into the documented error body. Handlers only do their own job.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import aiohttp
import structlog
from aiohttp import web

from runner.core.model import MAX_IMAGE_BYTES
from runner.core.money import unit_of
from runner.emulator.downloads import serve_bytes
from runner.emulator.faults import Faults, abort_connection, retry_after_header
from runner.emulator.files import FileStore, decode_base64
from runner.emulator.rendering import Renderer, is_loopback_url
from runner.emulator.responses import ApiError, bad_request
from runner.emulator.settings import Account, EmulatorSettings
from runner.emulator.stats import Stats
from runner.emulator.tasks import Task, TaskBoard, credits_for
from runner.emulator.validation import Creation, check_task_id, validate_creation

log = structlog.get_logger()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
CREATE_PATH = "/v1/videos/generations"
TASK_PREFIX = "/v1/tasks/"
UPLOAD_PREFIX = "/api/v1/files/upload/"
MAX_BODY = 16 * 1024 * 1024  # a 10 MB image in base64 plus its JSON fits


class EmulatorCore:
    """Everything the routes share: current settings, tasks, files, faults, counters."""

    def __init__(self, settings: EmulatorSettings, provider: str = "gateway") -> None:
        self._settings = settings
        self.provider = provider  # whose wire format, hence whose unit tasks are charged in
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop, once known
        self.stats = Stats()
        self.faults = Faults(settings.seed)
        self.files = FileStore()
        self.renderer = Renderer(self.files)
        self.board = TaskBoard(self.renderer, self.stats)

    @property
    def settings(self) -> EmulatorSettings:
        """The behaviour now in force."""
        return self._settings

    @settings.setter
    def settings(self, value: EmulatorSettings) -> None:
        self._settings = value
        self.faults.reseed(value.seed)

    def set_base_url(self, base_url: str) -> None:
        """Where links point (known only once the socket is bound)."""
        self.files.base_url = base_url
        self.board.base_url = base_url

    def now(self) -> float:
        """The event loop's clock: the only time tasks and links are measured in."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def stats_body(self) -> dict[str, Any]:
        """The body of ``GET /_emulator/stats`` (every listed account, even one unused)."""
        for account in self.settings.accounts.values():
            self.stats.account(account.label)
        self.board.in_flight(self.now())
        return {**self.stats.as_dict(), "unit": unit_of(self.provider)}

    async def close(self) -> None:
        """Stop renders and release the fetch session."""
        await self.board.close()
        await self.renderer.close()


CORE: web.AppKey[EmulatorCore] = web.AppKey("emulator_core", EmulatorCore)
# The listed account (settings ``accounts``) an API request authenticated as; None or absent:
# the default account. The account, never its key: handlers have no use for the secret.
ACCOUNT: web.RequestKey[Account | None] = web.RequestKey("emulator_account", Account)


def account_label(request: web.Request) -> str | None:
    """The label of the listed account ``request`` was made with (None: the default)."""
    account = request.get(ACCOUNT)
    return None if account is None else account.label


def owned(request: web.Request, owner: str | None) -> bool:
    """Whether a task of the account labelled ``owner`` is the requester's to see: a task
    belongs to the account that created it, as at the real services; all are one account's
    when no ``accounts`` are listed."""
    return owner == account_label(request)


def _authenticate(request: web.Request, expected: str | None) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "Missing API key: send Authorization: Bearer <key>.",
                       code="missing_api_key")
    if expected is not None and not hmac.compare_digest(key.strip().encode(), expected.encode()):
        raise ApiError(401, "Invalid API key.", code="invalid_api_key")


def _count(core: EmulatorCore, request: web.Request) -> None:
    if request.method == "POST" and request.path == CREATE_PATH:
        core.stats.creation_requests += 1
    elif request.method == "GET" and request.path.startswith(TASK_PREFIX):
        task_id = request.path[len(TASK_PREFIX):]
        core.stats.polls += 1
        if core.board.get(task_id) is not None:
            core.stats.polls_per_task[task_id] += 1


@dataclass(frozen=True)
class WireFormat:
    """What differs between the wire formats the emulator speaks (gateway, fal, Kling).

    ``api``: path prefixes of the API (counted, authenticated, given faults); ``creating``:
    whether a request is a creation (never reset before it is handled: the handler decides
    if the task exists); ``count`` and ``authenticate`` as for the gateway; ``respond``: an
    :class:`ApiError` (raised anywhere) as this format's error answer.
    """

    name: str
    api: tuple[str, ...]
    creating: Callable[[web.Request], bool]
    count: Callable[[EmulatorCore, web.Request], None]
    authenticate: Callable[[web.Request, str | None], None]
    respond: Callable[[ApiError], web.Response]


def middleware_for(wire: WireFormat) -> Any:
    """Counting, authentication, injected faults, and the documented error bodies, in the
    order a real service applies them, for one wire format."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        core = request.app[CORE]
        try:
            if request.path.startswith(wire.api):
                wire.count(core, request)
                settings = core.settings
                account = _account(wire, request, settings)
                request[ACCOUNT] = account
                if account is not None and request.method == "POST" and wire.creating(request):
                    core.stats.account(account.label).creation_requests += 1
                injected = core.faults.injected_error(settings)
                if injected is not None:
                    core.stats.injected_errors += 1
                    core.stats.rate_limited += injected.status == 429
                    raise injected
                if not wire.creating(request) and core.faults.chance(settings.reset_rate):
                    core.stats.resets += 1
                    abort_connection(request)
                    return web.Response(status=500)  # never reaches the client
            return await handler(request)
        except ApiError as exc:
            return wire.respond(exc)
        except web.HTTPRequestEntityTooLarge:
            return wire.respond(ApiError(413, f"the request body is larger than {MAX_BODY} "
                                              "bytes"))
        except web.HTTPException as exc:
            if exc.status in (404, 405):  # 405 is not a documented answer: no such route
                return wire.respond(ApiError(404, f"no route {request.path}"))
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:
            log.error("emulator_internal_error", path=request.path,
                      error=f"{type(exc).__name__}: {exc}")
            return wire.respond(ApiError(500, "The emulator failed to handle the request."))

    return middleware


def _account(wire: WireFormat, request: web.Request, settings: EmulatorSettings
             ) -> Account | None:
    """Authenticate ``request`` (401 as ``wire`` answers it): the listed account whose key
    it carries (Kling: whose secret key signed its token), else None after today's check of
    ``api_key``, the default account's."""
    for key, account in settings.accounts.items():
        try:
            wire.authenticate(request, key)
        except ApiError as exc:
            if exc.code == "invalid_api_key":
                continue  # not this account's key; maybe the next one's
            raise  # no key at all, or (Kling) this key's token, expired
        return account
    wire.authenticate(request, settings.api_key)
    return None


GATEWAY_WIRE = WireFormat(
    "gateway", ("/v1/", UPLOAD_PREFIX),
    creating=lambda request: request.path == CREATE_PATH,
    count=_count, authenticate=_authenticate, respond=ApiError.response,
)
gateway_middleware = middleware_for(GATEWAY_WIRE)


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
        raise bad_request("the request body is not valid JSON") from None


async def create_task(request: web.Request) -> web.StreamResponse:
    """POST /v1/videos/generations."""
    core = request.app[CORE]
    body = await json_body(request)
    task, answered = admit(core, request, validate_creation(body), body)
    if not answered:
        return web.Response(status=500)  # never reaches the client
    assert task is not None
    return web.json_response(core.board.describe(task, core.now(), core.settings.link_ttl,
                                                  with_progress=core.settings.progress != "none"))


def admit(core: EmulatorCore, request: web.Request, creation: Creation, body: Any
          ) -> tuple[Task | None, bool]:
    """Accept a valid creation as every wire format does: (task, answered).

    The account's limits first (429 over the concurrency cap, 402 past the credits), then
    the reset fault: a reset connection gets no answer (``answered`` False) and half the time
    its task exists all the same, as when a real answer is lost on its way back.
    """
    settings = core.settings
    now = core.now()
    cost = credits_for(creation, settings.prices(core.provider))
    return admit_with(core, request, cost,
                      lambda: core.board.create(creation, body, settings, core.faults.rng,
                                                now, cost, account_label(request)))


def admit_with(core: EmulatorCore, request: web.Request, cost: float, make: Callable[[], T]
               ) -> tuple[T | None, bool]:
    """:func:`admit` for anything a submission makes (``make``), costing ``cost`` credits.

    Apart so that what is not a task (fal's input refused only once queued, which costs
    nothing) meets the same account limits and the same lost answers as a task does.
    """
    settings = core.settings
    now = core.now()
    account = request.get(ACCOUNT)
    cap = settings.concurrency_cap
    if cap is not None and core.board.in_flight(now) >= cap:
        raise _over_cap(core, core.board.retry_after(now), None)
    if account is not None and account.concurrency_cap is not None and \
            core.board.in_flight_of(account.label, now) >= account.concurrency_cap:
        raise _over_cap(core, core.board.retry_after(now, account.label), account)
    if settings.credits is not None and \
            core.stats.credits_reserved + cost > settings.credits + 1e-9:
        raise _no_credits(cost)
    if account is not None and account.credits is not None and \
            core.stats.account(account.label).credits_reserved + cost > account.credits + 1e-9:
        raise _no_credits(cost)
    if core.faults.chance(settings.reset_rate):
        core.stats.resets += 1
        made = None
        if core.faults.chance(0.5):  # it exists, the client will never know its id
            made = make()
        abort_connection(request)
        return made, False
    return make(), True


def _over_cap(core: EmulatorCore, slot_frees: float, account: Account | None) -> ApiError:
    """The 429 of a creation over a concurrency cap (the emulator's, or ``account``'s),
    counted; ``Retry-After`` when the first task holding a seat is planned to finish."""
    core.stats.rate_limited += 1
    if account is not None:
        core.stats.account(account.label).rate_limited += 1
    wait = retry_after_header(core.settings, slot_frees)
    return ApiError(429, "Too many tasks in flight for this account; retry later.",
                    code="concurrency_limit_exceeded", headers={"Retry-After": wait})


def _no_credits(cost: float) -> ApiError:
    return ApiError(402, f"Insufficient credits: this task needs {cost:g}.",
                    code="insufficient_quota")


async def get_task(request: web.Request) -> web.StreamResponse:
    """GET /v1/tasks/{task_id}."""
    core = request.app[CORE]
    task_id = request.match_info["task_id"]
    check_task_id(task_id)
    task = core.board.get(task_id)
    if task is None or not owned(request, task.account):
        raise ApiError(404, f"task {task_id} not found", code="task_not_found")
    settings = core.settings
    return web.json_response(core.board.describe(task, core.now(), settings.link_ttl,
                                                  with_progress=settings.progress != "none"))


async def get_result(request: web.Request) -> web.StreamResponse:
    """GET /results/{id}.mp4?sig=...: the signed, expiring result link (the task by the id
    its client knows: :meth:`~runner.emulator.tasks.TaskBoard.public_name`)."""
    core = request.app[CORE]
    name = request.match_info["name"]
    task = core.board.named(name.removesuffix(".mp4"))
    if task is None or task.video is None or not name.endswith(".mp4"):
        raise ApiError(404, "no such result", code="not_found")
    verdict = core.board.check_link(task.task_id, request.query.get("sig", ""), core.now())
    if verdict == "expired":
        core.stats.expired_link_hits += 1
        raise ApiError(403, "This link has expired; query the task for a fresh one.",
                       code="link_expired")
    if verdict != "ok":
        raise ApiError(403, "This link's signature is not valid.", code="invalid_signature")
    settings = core.settings
    truncate = core.faults.chance(settings.truncate_rate)
    core.stats.downloads += 1
    core.stats.truncated += truncate
    core.stats.downloads_active += 1
    try:
        return await serve_bytes(request, task.video, "video/mp4",
                                 rate=settings.download_rate, truncate=truncate)
    finally:
        core.stats.downloads_active -= 1


async def get_file(request: web.Request) -> web.StreamResponse:
    """GET of an uploaded file (its ``file_url`` or ``download_url``)."""
    core = request.app[CORE]
    stored = core.files.get(request.match_info["file_id"])
    if stored is None:
        raise ApiError(404, "no such file", code="file_not_found")
    if core.now() >= stored.expires:
        raise ApiError(404, "this file has expired", code="file_expired")
    return await serve_bytes(request, stored.data, stored.mime)


def _uploaded(core: EmulatorCore, data: bytes, **names: Any) -> web.Response:
    settings = core.settings
    stored = core.files.add(data, now=core.now(), ttl=settings.upload_ttl, **names)
    core.stats.uploads += 1
    return web.json_response(core.files.response_body(stored, settings.upload_ttl))


def _only(body: Any, allowed: set[str], required: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]}", unknown[0])
    if required not in body:
        raise bad_request(f"{required} is required", required)
    return body


async def upload_base64(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/files/upload/base64."""
    body = _only(await json_body(request), {"base64_data", "file_name", "upload_path"},
                 "base64_data")
    data = decode_base64(body["base64_data"])
    return _uploaded(request.app[CORE], data, file_name=body.get("file_name"),
                     upload_path=body.get("upload_path"))


async def upload_stream(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/files/upload/stream (multipart, field ``file``)."""
    if not request.content_type.startswith("multipart/"):
        raise bad_request("send multipart/form-data with a field named file", "file")
    reader = await request.multipart()
    data: bytes | None = None
    original: str | None = None
    fields: dict[str, str] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader):
            raise bad_request("nested multipart bodies are not accepted", "file")
        if part.name == "file":
            if data is not None:
                raise bad_request("one file per request", "file")
            data = await _read_capped(part)
            original = unquote(part.filename) if part.filename else None
        elif part.name in ("file_name", "upload_path"):
            fields[part.name] = (await part.text())[:1024]
        else:
            raise bad_request(f"unknown field {part.name}", part.name)
    if data is None:
        raise bad_request("the multipart body has no field named file", "file")
    return _uploaded(request.app[CORE], data, file_name=fields.get("file_name"),
                     original_name=original, upload_path=fields.get("upload_path"))


async def _read_capped(part: aiohttp.BodyPartReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(256 * 1024):
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise ApiError(413, f"files are limited to {MAX_IMAGE_BYTES // (1024 * 1024)} MB",
                           param="file")
        chunks.append(chunk)
    return b"".join(chunks)


async def upload_url(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/files/upload/url: the emulator fetches only loopback URLs."""
    core = request.app[CORE]
    body = _only(await json_body(request), {"file_url", "file_name", "upload_path"},
                 "file_url")
    url = body["file_url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise bad_request("file_url must be an http or https URL", "file_url")
    if core.files.own_file_id(url) is None and not is_loopback_url(url):
        raise bad_request("the emulator fetches only loopback URLs (it has no network)",
                          "file_url")
    data = await core.renderer.fetch(url)
    if data is None:
        raise bad_request("file_url could not be fetched", "file_url")
    original = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or None
    return _uploaded(core, data, file_name=body.get("file_name"), original_name=original,
                     upload_path=body.get("upload_path"))


async def get_stats(request: web.Request) -> web.StreamResponse:
    """GET /_emulator/stats: the counters (no key needed)."""
    return web.json_response(request.app[CORE].stats_body())
