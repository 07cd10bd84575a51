"""The one place where HTTP statuses and aiohttp's exceptions become :mod:`runner.core.errors`.

Two questions decide a transport failure:

* *Was anything sent?* aiohttp tells us, through a request trace, the moment the request
  headers are handed to the socket. Before that moment (refused, DNS, TLS handshake, connect
  timeout) the gateway certainly saw nothing: ``ConnectionFailed(maybe_sent=False)``.
* *Is it a creation?* After that moment a creation may have been received and billed while
  its answer was lost (reset, server disconnected, timeout waiting, truncated answer): that is
  an :class:`~runner.core.errors.AmbiguousSubmission`, which the scheduler records and never
  confuses with a plain retryable failure. A stale keep-alive connection closed by the server
  looks exactly like this and is reported as ambiguous too: the safe side.

Every message is redacted and built from the exception's class and text only; the aiohttp
exception is not chained (``from None``) because its ``request_info`` carries the request
headers, bearer key included, and debug tracebacks may print it.
"""

from __future__ import annotations

import asyncio

import aiohttp

from runner.core.errors import (
    AmbiguousSubmission,
    AuthenticationFailed,
    ConnectionFailed,
    GatewayError,
    MalformedResponse,
    PermanentGatewayError,
    QuotaExhausted,
    RateLimited,
    TransientGatewayError,
)
from runner.core.redact import clip, redact
from runner.wire.parse import ErrorBody, parse_error_body, parse_retry_after

# Failures that happen while connecting: nothing of the request left this machine.
_BEFORE_SENDING: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,  # refused, unreachable, DNS, TLS handshake/certificate
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)


def describe(exc: BaseException) -> str:
    """``ClassName: text`` of an exception, redacted and cut to a few hundred characters
    (:data:`~runner.core.redact.QUOTE_LIMIT`), for a message.

    A library's message may quote what the server sent (aiohttp's parser errors show the
    bytes it choked on): a whole video body once reached the summary, the log and the store.
    """
    text = str(exc).strip()
    name = type(exc).__name__
    return clip(redact(f"{name}: {text}" if text else name))


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.TimeoutError | TimeoutError)


def transport_error(
    exc: BaseException, *, operation: str, sent: bool, creating: bool
) -> GatewayError:
    """The project's error for an aiohttp/OS failure during ``operation``.

    ``sent`` is whether the request headers had been handed to the socket; ``creating``
    whether the request was a task creation (which makes a lost answer ambiguous).
    """
    if isinstance(exc, aiohttp.TooManyRedirects):
        return PermanentGatewayError(f"{operation}: too many redirects ({describe(exc)})")
    if isinstance(exc, aiohttp.RedirectClientError):
        return PermanentGatewayError(f"{operation}: refused redirect ({describe(exc)})")
    if isinstance(exc, _BEFORE_SENDING) or not sent:
        what = "timed out connecting" if _is_timeout(exc) else "could not connect"
        return ConnectionFailed(
            f"{operation}: {what} to the gateway, nothing was sent ({describe(exc)})",
            maybe_sent=False,
        )
    if _is_timeout(exc):
        what = "no answer in time"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        what = "the answer was cut off"
    else:
        what = "the connection broke after the request was sent"
    if creating:
        return AmbiguousSubmission(
            f"{operation}: {what}; the task may or may not have been created "
            f"({describe(exc)})"
        )
    return ConnectionFailed(f"{operation}: {what} ({describe(exc)})", maybe_sent=True)


def _detail(body: ErrorBody) -> str:
    parts = [p for p in (body.type or body.code, body.message) if p]
    return ": ".join(parts) if parts else "no error detail"


def http_error(
    status: int,
    body: bytes,
    *,
    operation: str,
    retry_after: str | None = None,
    task_id: str | None = None,
) -> GatewayError:
    """The project's error for a non-2xx answer, by the error table of docs/gateway-api.md."""
    err = parse_error_body(body)
    detail = _detail(err)
    code = err.code or err.type
    prefix = f"{operation}: HTTP {status}"

    def make(cls: type[GatewayError], what: str) -> GatewayError:
        return cls(f"{prefix}, {what} ({detail})", code=code, status=status, param=err.param)

    if status == 401:
        return make(AuthenticationFailed, "the gateway refused the API key")
    if status == 402:
        return make(QuotaExhausted, "the account is out of credits")
    if status == 429:
        wait = parse_retry_after(retry_after)
        hint = f", retry after {wait:g} s" if wait is not None else ""
        return RateLimited(
            f"{prefix}, rate limited{hint} ({detail})",
            retry_after=wait, code=code, status=status, param=err.param,
        )
    if status == 404 and task_id is not None:
        return make(PermanentGatewayError, f"task {task_id} is unknown")
    if status == 400 and err.param:
        return make(PermanentGatewayError, f"invalid '{err.param}'")
    if status == 408 or status >= 500:
        return make(TransientGatewayError, "gateway trouble, retry later")
    if 400 <= status < 500:
        return make(PermanentGatewayError, "request refused")
    return make(MalformedResponse, "not an answer the gateway documents")
