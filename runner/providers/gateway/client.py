"""The real HTTP client of the gateway: one aiohttp session, errors translated at this edge.

:class:`GatewayClient` implements :class:`runner.wire.protocol.Gateway`. It is a pure
translator: it sends one request per call and turns the outcome into a typed value or a
:mod:`runner.core.errors` exception (see :mod:`runner.wire.translate`); it never retries,
because retry, pacing and backoff are the scheduler's policy.

Security properties, each tested:

* TLS certificates are always verified (there is no option to turn it off);
* the API key is registered with :mod:`runner.core.redact` on construction, sent only to the
  configured gateway and file-service origins, and never appears in an exception or log line;
* only ``http``/``https`` URLs are followed, redirects are limited, JSON answers are capped
  at :data:`runner.wire.parse.MAX_JSON_BYTES` and results at ``max_result_bytes``.

First contact: until an origin has answered like the gateway, a failure to connect or an
answer that is plainly someone else's raises :class:`~runner.core.errors.GatewayUnreachable`
naming the URL and the setting to check (:mod:`runner.providers.gateway.reach`); afterwards the same
outcomes keep the meaning docs/gateway-api.md gives them.

Lifecycle: the session is created on first use (inside the running loop); after
:meth:`close` every call raises ``RuntimeError``. ``async with GatewayClient(...)`` closes it.
"""

from __future__ import annotations

import enum
import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any, ClassVar
from urllib.parse import quote

import aiofiles
import aiohttp
import structlog
from yarl import URL

from runner import __version__ as _version
from runner.core.errors import GatewayError, LinkExpired, MalformedResponse, PermanentGatewayError
from runner.core.redact import REDACTED, redact, register_secret
from runner.providers.download import download_to_part
from runner.providers.gateway.reach import Reach, connect_failure, foreign_answer
from runner.providers.gateway.timeouts import ClientTimeouts
from runner.wire.parse import (
    MAX_JSON_BYTES,
    parse_json_object,
    parse_upload,
    task_from_json,
)
from runner.wire.protocol import NOT_THE_GATEWAY, Downloaded, TaskState, UploadedFile
from runner.wire.specs import GATEWAY, spec
from runner.wire.translate import http_error, transport_error
from runner.wire.urls import checked_url, join, safe_url_text

__all__ = ["ClientTimeouts", "GatewayClient"]

log = structlog.get_logger()

CREATE_PATH = "/v1/videos/generations"
TASK_PATH = "/v1/tasks/"
UPLOAD_PATH = "/api/v1/files/upload/stream"
UPLOAD_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


async def _on_headers_sent(
    _session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    _params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    """Trace hook: from here on the gateway may have seen the request."""
    flags = ctx.trace_request_ctx
    if isinstance(flags, dict):
        flags["sent"] = True


class GatewayClient:
    """Speaks the gateway's HTTP API; see the module docstring for its guarantees."""

    # Who answers at the base URL, in messages (a wrong URL, an answer not the service's):
    # the provider clients built on this one say "fal.ai" or "the Kling API", since their
    # users have no gateway to look for.
    label: ClassVar[str] = spec(GATEWAY).label

    def __init__(
        self,
        base_url: str,
        files_url: str | None,
        api_key: str,
        *,
        timeouts: ClientTimeouts | None = None,
        max_result_bytes: int = 2 * 1024**3,
        max_redirects: int = 3,
        connection_limit: int = 32,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("the API key is empty")
        register_secret(api_key)
        self._base = checked_url(base_url, what="api.base_url")
        self._files = checked_url(files_url, what="api.files_url") if files_url else self._base
        if max_result_bytes <= 0:
            raise ValueError("max_result_bytes must be positive")
        if max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")
        if connection_limit <= 0:
            raise ValueError("connection_limit must be positive")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._trusted = {self._base.origin(), self._files.origin()}
        self.timeouts = timeouts or ClientTimeouts()
        self.max_result_bytes = max_result_bytes
        self.max_redirects = max_redirects
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        self._state = _State.UNOPENED
        self._reach = Reach()
        self._links: dict[str, str] = {}  # result links carrying a secret, by redacted text

    def __repr__(self) -> str:
        return f"GatewayClient({safe_url_text(self._base)!r}, state={self._state.value})"

    async def __aenter__(self) -> GatewayClient:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._state is _State.CLOSED:
            raise RuntimeError("GatewayClient is closed; create a new one")
        if self._session is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_headers_sent)
            connector = aiohttp.TCPConnector(
                limit=self._connection_limit, ssl=ssl.create_default_context()
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[trace],
                headers={"User-Agent": f"shotrun/{_version}"},
                auto_decompress=True,
            )
            self._state = _State.OPENED
        return self._session

    async def close(self) -> None:
        """Release connections; later calls raise ``RuntimeError``. Safe to call twice."""
        self._state = _State.CLOSED
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _headers_for(self, url: URL) -> dict[str, str]:
        """The credentials header, only for the origins the user configured."""
        return self._auth_headers() if url.origin() in self._trusted else {}

    def _auth_headers(self) -> dict[str, str]:
        """The credentials of one request (a provider's client may make them per request)."""
        return dict(self._auth)

    def _http_error(self, status: int, body: bytes, *, operation: str,
                    retry_after: str | None, task_id: str | None) -> GatewayError:
        """The error of a non-2xx answer (a provider's client reads its own error codes)."""
        return http_error(status, body, operation=operation, retry_after=retry_after,
                          task_id=task_id)

    def _is_query(self, url: URL) -> bool:
        """True when ``url`` asks about a task (a 404 there means "unknown task")."""
        return "/v1/tasks/" in url.path

    async def _exchange(
        self,
        method: str,
        url: URL,
        *,
        operation: str,
        creating: bool = False,
        task_id: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        extra_headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> bytes:
        """Send one request; return the 2xx body (capped) or raise the translated error."""
        session = self._open()
        flags = {"sent": False}
        try:
            async with session.request(
                method,
                url,
                headers={**self._headers_for(url), **(extra_headers or {})},
                timeout=timeout or self.timeouts.for_request(),
                allow_redirects=self.max_redirects > 0,
                max_redirects=self.max_redirects + 1,  # aiohttp counts the one that fails
                trace_request_ctx=flags,
                **kwargs,
            ) as resp:
                body = await _read_capped(resp, operation)
                log.debug("gateway_answered", operation=operation, status=resp.status)
                self._check_first_answer(url, resp, body, creating=creating)
                if 200 <= resp.status < 300:
                    return body
                raise self._http_error(
                    resp.status,
                    body,
                    operation=operation,
                    retry_after=resp.headers.get("Retry-After"),
                    task_id=task_id,
                )
        except GatewayError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            unreached = None if self._reach.reached(url) else connect_failure(
                exc, base=self._configured(url), connect_timeout=self.timeouts.connect,
                **self._names(url))
            if unreached is not None:
                log.debug("gateway_unreached", operation=operation, error=unreached.message)
                raise unreached from None
            error = transport_error(
                exc, operation=operation, sent=flags["sent"], creating=creating
            )
            log.debug("gateway_transport_error", operation=operation, error=str(error))
            raise error from None

    def _configured(self, url: URL) -> URL:
        """The configured URL that ``url`` was built from (the one the user can fix)."""
        return self._base if url.origin() == self._base.origin() else self._files

    def _names(self, url: URL) -> dict[str, str]:
        """How a message names the service at ``url`` and the setting that chose it."""
        if url.origin() == self._base.origin():
            return {"what": self.label, "setting": "api.base_url", "flag": "--base-url"}
        return {"what": "the file service", "setting": "api.files_url", "flag": "--files-url"}

    def _check_first_answer(
        self, url: URL, resp: aiohttp.ClientResponse, body: bytes, *, creating: bool = False
    ) -> None:
        """Until an origin has answered like the gateway, make sure this answer does.

        Raises GatewayUnreachable for an answer that is plainly someone else's (see
        :func:`runner.providers.gateway.reach.foreign_answer`); otherwise the origin counts as
        reached
        and every later outcome keeps the gateway's error semantics.

        Except a 2xx to a creation: whoever answered accepted the request, so a task may
        have been made and billed. It is :class:`~runner.core.errors.MalformedResponse` (the
        scheduler counts it as ambiguous), with the same question about the URL and the
        code ``not_the_gateway``, never "nothing was sent".
        """
        if self._reach.reached(url):
            return
        names = self._names(url)
        foreign = foreign_answer(resp.status, body, resp.content_type, url=url,
                                 what=names["what"], setting=names["setting"],
                                 flag=names["flag"], query=self._is_query(url))
        if foreign is not None:
            log.debug("gateway_foreign_answer", status=resp.status, error=foreign.message)
            if creating and 200 <= resp.status < 300:
                raise MalformedResponse(
                    f"{foreign.message} (the creation was accepted: it may have been billed)",
                    code=NOT_THE_GATEWAY, status=resp.status)
            raise foreign
        self._reach.mark(url)

    async def create_task(self, payload: Mapping[str, Any]) -> TaskState:
        """POST the creation; a lost answer after sending raises AmbiguousSubmission.

        A 2xx whose body cannot be read raises MalformedResponse with ``status`` set: the
        gateway accepted *something*, so the task may exist and be billed.
        """
        return self.remember_links((await self.create_task_answer(payload))[0])

    async def create_task_answer(
        self, payload: Mapping[str, Any]
    ) -> tuple[TaskState, dict[str, Any]]:
        """:meth:`create_task`, with the answer's JSON object as the gateway sent it.

        ``shotrun probe`` reports the fields and types a gateway really answers with, which
        the parsed :class:`TaskState` keeps only the documented part of.
        """
        body = await self._exchange(
            "POST",
            join(self._base, CREATE_PATH),
            operation="create task",
            creating=True,
            data=json_bytes(payload),
            extra_headers={"Content-Type": "application/json"},
        )
        what = "create task answer"
        try:
            answer = parse_json_object(body, what=what)
            return task_from_json(answer, what=what), answer
        except MalformedResponse as exc:
            if exc.status is None:
                exc.status = 200
            raise

    async def create_native(
        self, body: Mapping[str, Any]
    ) -> tuple[TaskState, dict[str, Any]]:
        """A creation of a body already in the provider's words (``shotrun probe`` sends
        bodies invalid on purpose): for the gateway the canonical payload is that body."""
        return await self.create_task_answer(body)

    async def get_task(self, task_id: str) -> TaskState:
        """GET the task; 404 means the gateway does not know it."""
        return self.remember_links((await self.get_task_answer(task_id))[0])

    def remember_links(self, state: TaskState) -> TaskState:
        """Keep the result links of ``state`` that carry a secret, by their redacted text.

        A provider may put the key in a link (``?key=...``). The store keeps links redacted
        (the key is never written), so :meth:`download` is handed the redacted text and
        finds the real link here, for this client's life.
        """
        for url in state.results:
            shown = redact(url)
            if shown != url:
                self._links[shown] = url
        return state

    async def get_task_answer(self, task_id: str) -> tuple[TaskState, dict[str, Any]]:
        """:meth:`get_task`, with the answer's JSON object (see :meth:`create_task_answer`)."""
        if not task_id:
            raise ValueError("task_id is empty")
        url = join(self._base, TASK_PATH + quote(task_id, safe=""))
        body = await self._exchange(
            "GET", url, operation=f"query task {task_id}", task_id=task_id
        )
        what = f"query task {task_id} answer"
        data = parse_json_object(body, what=what)
        state = task_from_json(data, what=what)
        if state.task_id != task_id:
            raise MalformedResponse(
                f"query task {task_id}: the answer describes task {state.task_id}"
            )
        return state, data

    async def upload_file(self, path: Path, mime: str) -> UploadedFile:
        """Upload one image through the multipart stream endpoint."""
        path = Path(path)
        if mime not in UPLOAD_MIME_TYPES:
            raise PermanentGatewayError(
                f"cannot upload {path.name}: type {mime} is not accepted by the file service "
                f"(only {', '.join(sorted(UPLOAD_MIME_TYPES))})"
            )
        try:
            async with aiofiles.open(path, "rb") as f:
                content = await f.read(MAX_UPLOAD_BYTES + 1)
        except OSError as exc:
            raise PermanentGatewayError(
                f"cannot upload {path}: {exc.strerror or exc}"
            ) from None
        if len(content) > MAX_UPLOAD_BYTES:
            raise PermanentGatewayError(
                f"cannot upload {path}: larger than the file service's 10 MB limit"
            )
        form = aiohttp.FormData()
        form.add_field("file", content, filename=path.name, content_type=mime)
        form.add_field("file_name", path.name)
        body = await self._exchange(
            "POST",
            join(self._files, UPLOAD_PATH),
            operation=f"upload {path.name}",
            timeout=self.timeouts.for_upload(),
            data=form,
        )
        uploaded = parse_upload(body)
        try:
            checked_url(uploaded.url, what="uploaded file URL")
        except ValueError as exc:
            raise MalformedResponse(f"upload {path.name}: {exc}") from None
        return uploaded

    async def download(self, url: str, part_path: Path) -> Downloaded:
        """Stream a result into ``part_path`` (see :mod:`runner.providers.download`).

        ``url`` may be a link as the store keeps it, redacted: the real one is the one this
        client read from the task (:meth:`remember_links`); one it never read (an earlier
        run's) is expired for the caller, which asks the task for the link again.
        """
        real = self._links.get(url)
        if real is None and REDACTED in url:
            raise LinkExpired(f"result link {safe_url_text(url)} was kept without the secret "
                              "it carries; the task is asked for it again")
        url = real or url
        session = self._open()
        try:
            headers = self._headers_for(URL(url))
        except (TypeError, ValueError):
            headers = {}
        return await download_to_part(
            session,
            url,
            Path(part_path),
            max_bytes=self.max_result_bytes,
            timeout=self.timeouts.for_download(),
            headers=headers,
            max_redirects=self.max_redirects,
            pace=self.timeouts.download_pace(),
        )


def json_bytes(body: Mapping[str, Any]) -> bytes:
    """A creation's body as sent, for every provider (the model's frozen containers become
    JSON lists and objects); a body that is no JSON is refused before anything is sent."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False,
                          default=_jsonable).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PermanentGatewayError(f"create task: payload is not JSON ({exc})") from None


def _jsonable(value: object) -> object:
    """JSON for the frozen containers the model uses (read-only mappings, tuples, sets)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list | frozenset | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


async def _read_capped(resp: aiohttp.ClientResponse, operation: str) -> bytes:
    """The body, at most the JSON cap.

    A 2xx answer larger than the cap (announced or actual) is malformed. An error answer is
    cut at the cap instead: its status decides what happens, the body only adds detail.
    """
    ok = 200 <= resp.status < 300
    if ok and resp.content_length is not None and resp.content_length > MAX_JSON_BYTES:
        raise MalformedResponse(
            f"{operation}: answer of {resp.content_length} bytes is larger than the "
            f"{MAX_JSON_BYTES} bytes allowed",
            status=resp.status,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            if not ok:
                break
            raise MalformedResponse(
                f"{operation}: answer is larger than the {MAX_JSON_BYTES} bytes allowed",
                status=resp.status,
            )
        chunks.append(chunk)
    return b"".join(chunks)
