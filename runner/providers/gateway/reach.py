"""First contact: telling a wrong URL from a gateway having a bad minute.

A refused connection means two different things. In the middle of a run, after the gateway
has answered, it is a blip (a restart, a load balancer shuffling) that an overnight run must
ride out with patient backoff. Before the configured URL has ever answered, it is most likely
a wrong ``api.base_url`` (a typo, a port, an emulator not started): waiting minutes before
saying so is what a user cannot tell from a hang. The same goes for an answer that is plainly
not the gateway's (an HTML page, a 404 on the creation endpoint): the gateway answers JSON.

:class:`Reach` remembers, per origin, whether the gateway has answered in this client's life;
until it has, :func:`connect_failure` and :func:`foreign_answer` turn those outcomes into a
:class:`~runner.core.errors.GatewayUnreachable` whose one-line message names the URL (never the
key: URLs pass through :func:`~runner.wire.urls.safe_url_text`) and the setting to check.
What to do with it (a few quick retries, then stop the run) is the scheduler's policy.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl

import aiohttp
from yarl import URL

from runner.core.errors import GatewayUnreachable
from runner.wire.urls import safe_url_text

# Failures of the connection itself (nothing listened, no such host): a socket accepted and
# then reset is something listening, which is not a wrong URL, so it is not among them.
_CONNECTING: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    ConnectionRefusedError,
    socket.gaierror,
)

# Statuses the gateway documents as passing trouble (docs/gateway-api.md, "Errors"), plus the
# timeouts a proxy in front of it gives: an HTML page with one of them is a proxy saying the
# gateway behind it is down, which the ordinary transient policy handles.
_PASSING = frozenset({408, 429, 500, 502, 503, 504})
# The creation and upload endpoints exist on a gateway: "no such endpoint" is someone else.
_NO_ENDPOINT = frozenset({404, 405, 501})


class Reach:
    """Which origins have answered like the gateway in this client's life."""

    __slots__ = ("_answered",)

    def __init__(self) -> None:
        self._answered: set[URL] = set()

    def reached(self, url: URL) -> bool:
        """True once ``url``'s origin has given an answer that looks like the gateway's."""
        return url.origin() in self._answered

    def mark(self, url: URL) -> None:
        self._answered.add(url.origin())


def _reason(exc: BaseException, connect_timeout: float) -> str:
    """What went wrong connecting, in the words of curl and friends."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return "name not resolved"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not trusted"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ConnectionTimeoutError | TimeoutError):
        return f"no answer within the {connect_timeout:g} s connect timeout"
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    code = getattr(os_error, "errno", None)
    if isinstance(os_error, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return "connection refused"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to host"
    strerror = getattr(os_error, "strerror", None)
    return str(strerror).lower() if strerror else type(exc).__name__


def connect_failure(
    exc: BaseException, *, base: URL, what: str, setting: str, flag: str,
    connect_timeout: float,
) -> GatewayUnreachable | None:
    """The error for a connection that could not be made to a never-reached origin.

    ``base`` is the configured URL (shown), ``what`` the client's ``label`` ("the gateway",
    "fal.ai", "the Kling API": a fal or Kling user has no gateway to look for) or "the file
    service", ``setting`` and ``flag`` the manifest key and the option that set it. None when
    ``exc`` is not a failure to connect (the caller then translates it as usual).
    """
    if not isinstance(exc, _CONNECTING):
        return None
    reason = _reason(exc, connect_timeout)
    return GatewayUnreachable(
        f"cannot connect to {what} at {safe_url_text(base)} ({reason}): check {setting} or {flag}",
        url=safe_url_text(base), code="connection_failed",
    )


def _json(body: bytes) -> object:
    """The parsed body, or ``_NOT_JSON``."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _NOT_JSON


_NOT_JSON = object()


def _is_html(body: bytes, content_type: str) -> bool:
    return "html" in content_type or body[:64].lstrip().startswith(b"<")


def _kind(body: bytes, content_type: str, parsed: object, what: str) -> str:
    """What the answer was, in words; JSON is said not to be ``what``'s (the service the
    client expected: "the gateway", "fal.ai", "the Kling API", "the file service")."""
    if _is_html(body, content_type):
        return "an HTML page"
    if not body.strip():
        return "an empty body"
    if parsed is not _NOT_JSON:
        return f"JSON that is not {what}'s"
    return "a body that is not JSON"


def foreign_answer(
    status: int, body: bytes, content_type: str, *, url: URL, what: str, setting: str,
    flag: str, query: bool | None = None,
) -> GatewayUnreachable | None:
    """The error for a first answer that is plainly not ``what``'s, or None if it may be.

    The gateway answers JSON objects, with the statuses of docs/gateway-api.md. Plainly not the
    gateway:

    * a 2xx that is an HTML page (a web server's catch-all route; a captive portal). Other
      unreadable 2xx bodies keep their meaning (for a creation: *ambiguous*, the safe side);
    * an error status (4xx/5xx) whose body is not a JSON object, except the passing-trouble
      statuses a proxy in front of the gateway gives while it restarts;
    * "no such endpoint" (404/405/501) on the creation or upload endpoint, whatever the body
      (a base URL with one ``/v1`` too many gets a JSON 404 from the gateway itself). A 404
      in JSON on a task query is the gateway's "task unknown" and passes. ``query`` says
      whether ``url`` is one (default: a gateway task path; a provider's paths differ).
    """
    parsed = _json(body)
    if 200 <= status < 300:
        foreign = _is_html(body, content_type) and not isinstance(parsed, dict)
    elif 400 <= status < 600:
        query = "/v1/tasks/" in url.path if query is None else query
        foreign = (status in _NO_ENDPOINT and not query) or (
            not isinstance(parsed, dict) and status not in _PASSING)
    else:
        foreign = False
    if not foreign:
        return None
    shown = safe_url_text(url)
    return GatewayUnreachable(
        f"{shown} answered HTTP {status} with {_kind(body, content_type, parsed, what)}: "
        f"is {setting} (or {flag}) {what}?",
        url=shown, retry=False, code="not_the_gateway", status=status,
    )
