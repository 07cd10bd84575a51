"""The :class:`~runner.gateway.types.Gateway` of fal.ai's queue API (bodies: :mod:`.fal`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from yarl import URL

from runner.errors import PermanentGatewayError
from runner.gateway.types import TaskState
from runner.gateway.urls import join
from runner.providers.common import failure_code
from runner.providers.fal import QUEUE, error_of, request_id, result_of, status_of, translate
from runner.providers.http import ProviderClient, json_bytes
from runner.redact import register_secret


class FalClient(ProviderClient):
    """Speaks fal.ai's queue API; see the module docstring."""

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

    async def create_task(self, payload: Mapping[str, Any]) -> TaskState:
        """Submit to the tier's app; the answer is queued (no id is ambiguous: see parse)."""
        app, body = translate(payload)
        url = join(self._base, "/" + app)
        webhook = payload.get("callback_url")
        if isinstance(webhook, str) and webhook:
            url = url.with_query({"fal_webhook": webhook})
        answer = await self._exchange("POST", url, operation="create task", creating=True,
                                      data=json_bytes(body),
                                      extra_headers={"Content-Type": "application/json"})
        return TaskState(request_id(answer, what="create task answer"), "pending")

    async def get_task(self, task_id: str) -> TaskState:
        """The request's status; for a completed one, its result too."""
        if not task_id:
            raise ValueError("task_id is empty")
        where = f"/{QUEUE}/requests/{quote(task_id, safe='')}"
        body = await self.send("GET", where + "/status", operation=f"query task {task_id}",
                               task_id=task_id)
        state = status_of(body, task_id, what=f"query task {task_id} answer")
        if state is not None:
            return state
        try:
            result = await self.send("GET", where, operation=f"result of task {task_id}",
                                     task_id=task_id)
        except PermanentGatewayError as exc:
            if exc.status in (400, 422):  # the request failed: its result is the refusal
                return TaskState(task_id, "failed", error_code=failure_code(exc.message),
                                 error_message=exc.message)
            raise
        return result_of(result, task_id, what=f"result of task {task_id}")
