"""The HTTP client the fal and Kling clients extend.

Both are :class:`~runner.providers.gateway.client.GatewayClient` underneath, so they inherit every
property that client is tested for (TLS always verified, the key only to the configured
origins and never in a message, capped answers, first-contact detection of a wrong URL,
*ambiguous* for a creation whose answer was lost, downloads resumed with Range). What a
provider changes is only what its documentation changes: the paths, the bodies, the
``Authorization`` header and what its error answers mean.
"""

from __future__ import annotations

from collections.abc import Callable

from yarl import URL

from runner.core.errors import GatewayError
from runner.providers.gateway.client import GatewayClient
from runner.wire.urls import join


class ProviderClient(GatewayClient):
    """A :class:`GatewayClient` whose subclasses change paths, bodies, header and errors.

    ``error_of`` is the provider's reading of an answer that is not a success (the
    signature of :func:`runner.wire.kling.error_of`).
    """

    error_of: Callable[..., GatewayError]

    def _http_error(self, status: int, body: bytes, *, operation: str,
                    retry_after: str | None, task_id: str | None) -> GatewayError:
        return type(self).error_of(status, body, operation=operation,
                                   retry_after=retry_after, task_id=task_id)

    def url(self, path: str) -> URL:
        """``path`` (already percent-encoded) under the configured base URL."""
        return join(self._base, path)

    async def send(self, method: str, path: str, *, operation: str, body: bytes | None = None,
                   creating: bool = False, task_id: str | None = None) -> bytes:
        """One exchange with the provider; the 2xx body or the translated error."""
        headers = {"Content-Type": "application/json"} if body is not None else None
        return await self._exchange(method, self.url(path), operation=operation,
                                    creating=creating, task_id=task_id, data=body,
                                    extra_headers=headers)
