"""The :class:`~runner.wire.protocol.Gateway` of fal.ai's queue API (bodies: :mod:`.fal`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from yarl import URL

from runner.core.errors import PermanentGatewayError
from runner.core.redact import register_secret
from runner.providers.gateway.client import json_bytes
from runner.providers.http import ProviderClient
from runner.wire.common import answer_object, failure_code
from runner.wire.fal import (
    APPS,
    QUEUE,
    error_of,
    result_of,
    status_of,
    submit_answer,
    translate,
)
from runner.wire.protocol import TaskState
from runner.wire.specs import FAL, spec
from runner.wire.urls import join


class FalClient(ProviderClient):
    """Speaks fal.ai's queue API; see the module docstring."""

    label = spec(FAL).label
    error_of = staticmethod(error_of)

    def __init__(self, base_url: str, files_url: str | None, api_key: str,
                 **options: Any) -> None:
        super().__init__(base_url, files_url, api_key, **options)
        register_secret(api_key)
        self._key_header = {"Authorization": f"Key {api_key.strip()}"}

    def __repr__(self) -> str:
        return f"FalClient({str(self._base)!r})"

    def _auth_headers(self) -> dict[str, str]:
        return dict(self._key_header)

    def _is_query(self, url: URL) -> bool:
        return "/requests/" in url.path

    def requests_path(self, task_id: str) -> str:
        """The path of a request under the queue (its status and cancel paths extend it)."""
        return f"/{QUEUE}/requests/{quote(task_id, safe='')}"

    def status_url(self, task_id: str) -> str:
        """Where a request's status is asked (``shotrun probe`` compares it with the
        ``status_url`` fal.ai answers at submit)."""
        return str(self.url(self.requests_path(task_id) + "/status"))

    async def create_native(self, body: Mapping[str, Any], *, app: str = APPS["720p"],
                            webhook: str | None = None) -> tuple[TaskState, dict[str, Any]]:
        """Submit an input already in fal's words to ``app``; the queued task and the
        answer's JSON object (``shotrun probe`` reads both)."""
        url = join(self._base, "/" + app)
        if webhook:
            url = url.with_query({"fal_webhook": webhook})
        answer = await self._exchange("POST", url, operation="create task", creating=True,
                                      data=json_bytes(body),
                                      extra_headers={"Content-Type": "application/json"})
        found, data = submit_answer(answer, what="create task answer")
        return TaskState(found, "pending"), data

    async def create_task_answer(self, payload: Mapping[str, Any]
                                 ) -> tuple[TaskState, dict[str, Any]]:
        """Submit a canonical payload to its tier's app (no id is ambiguous: see parse)."""
        app, body = translate(payload)
        webhook = payload.get("callback_url")
        return await self.create_native(body, app=app, webhook=webhook if isinstance(
            webhook, str) else None)

    async def get_task_answer(self, task_id: str) -> tuple[TaskState, dict[str, Any]]:
        """The request's status; for a completed one, its result too. The body is the
        status answer's JSON object, with the result's fields merged in when one was read
        (they share no names: ``status`` and ``queue_position`` vs ``video``)."""
        if not task_id:
            raise ValueError("task_id is empty")
        where = self.requests_path(task_id)
        body = await self.send("GET", where + "/status", operation=f"query task {task_id}",
                               task_id=task_id)
        what = f"query task {task_id} answer"
        state = status_of(body, task_id, what=what)
        data = answer_object(body, what)
        if state is not None:
            return state, data
        try:
            result = await self.send("GET", where, operation=f"result of task {task_id}",
                                     task_id=task_id)
        except PermanentGatewayError as exc:
            if exc.status in (400, 422):  # the request failed: its result is the refusal
                return TaskState(task_id, "failed", error_code=failure_code(exc.message),
                                 error_message=exc.message), data
            raise
        what = f"result of task {task_id}"
        return result_of(result, task_id, what=what), {**data, **answer_object(result, what)}

    async def cancel(self, task_id: str) -> tuple[int, dict[str, Any]]:
        """``PUT .../cancel`` (docs/providers.md): fal's HTTP status and answer. A request still
        queued is cancelled (202); one running or done is not (400): both are answers, not
        errors, for the caller to report."""
        try:
            body = await self.send("PUT", self.requests_path(task_id) + "/cancel",
                                   operation=f"cancel task {task_id}", task_id=task_id)
        except PermanentGatewayError as exc:
            if exc.status == 400:
                return 400, {"detail": exc.message}
            raise
        return 202, answer_object(body, f"cancel task {task_id} answer")
