"""The gateway's error bodies and identifiers, in exactly the documented shapes.

Every refusal in the emulator is an :class:`ApiError` raised from wherever the problem is
found (validation, auth, the task store); one middleware turns it into the documented body
``{"error": {"code", "message", "type", "param"?}}`` with the documented HTTP status, so the
shape cannot drift between endpoints.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from aiohttp import web

# HTTP status -> the error ``type`` the gateway documents (docs/gateway-api.md, "Errors").
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    502: "upstream_error",
    503: "service_unavailable_error",
}
# The ``code`` when the raiser does not give a more precise one.
DEFAULT_CODES: dict[int, str] = {
    400: "invalid_parameter",
    401: "invalid_api_key",
    402: "insufficient_quota",
    403: "permission_denied",
    404: "not_found",
    413: "request_too_large",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
}

TASK_ID_RE = re.compile(r"^task-unified-\d{10}-[a-z0-9]{8}$")
_ALPHABET = string.ascii_lowercase + string.digits


class ApiError(Exception):
    """A documented HTTP error; ``headers`` are added to the answer (e.g. ``Retry-After``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status not in ERROR_TYPES:
            raise ValueError(f"undocumented error status {status}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or DEFAULT_CODES[status]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The documented error body; ``param`` only when the error is about one field."""
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "type": ERROR_TYPES[self.status],
        }
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}

    def response(self) -> web.Response:
        """The aiohttp answer for this error."""
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None) -> ApiError:
    """400 ``invalid_request_error`` about ``param``."""
    return ApiError(400, message, param=param)


def new_task_id(created: int) -> str:
    """``task-unified-<created epoch>-<8 lowercase letters or digits>`` as the gateway makes."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"task-unified-{created}-{suffix}"


def new_token(length: int = 24) -> str:
    """An unguessable URL-safe token (file ids, link signatures)."""
    return secrets.token_urlsafe(length)[:length]
