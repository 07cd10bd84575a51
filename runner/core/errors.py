"""The project's own error types, and the exit codes they map to.

Errors from dependencies (aiohttp, sqlite3, PyAV, yaml) are translated into these at the
boundary where they happen, so that the scheduler and the CLI reason about *what to do*
(retry, fail the take, stop the run) rather than about which library complained.

    ShotrunError
    ├── UsageError                      bad command line                      -> exit 2
    ├── ManifestError                   invalid manifest (holds every Problem) -> exit 2
    ├── StateError                      the state store cannot be used (opening it: exit 2)
    │   ├── StoreLocked                 another process holds the writer lock (a run)
    │   └── StoreWriteFailed            it stopped recording mid-way (disk full...) -> exit 4
    ├── GatewayError                    anything the gateway (or the way to it) said
    │   ├── TransientGatewayError       retry later with backoff
    │   │   ├── RateLimited             429: back off, honour retry_after, lower the pace
    │   │   └── ConnectionFailed        reset, refused, timeout before a request was sent
    │   │       └── GatewayUnreachable  the configured URL never reached the gateway this run
    │   ├── PermanentGatewayError       fix the request; never retried as is
    │   ├── AuthenticationFailed        401: stop the whole run
    │   ├── QuotaExhausted              402 / quota_exceeded: stop submitting
    │   ├── AmbiguousSubmission         a creation was sent but its answer was lost
    │   └── MalformedResponse           the gateway answered something we cannot read
    ├── DownloadError                   a result could not be saved
    │   ├── LinkExpired                 403/404/410 on a result link: query the task again
    │   └── DownloadRefused             too large / not http(s): retrying will not help
    └── VerifyError                     a saved output does not decode or does not match

Exceptions also inherit the matching built-in where one exists (``ValueError``,
``TimeoutError``, ``OSError``) so that generic handlers still work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CRASH = 3
EXIT_STORE = 4
EXIT_INTERRUPTED = 130

# Business codes of failed tasks (docs/gateway-api.md, "Query a task").
PERMANENT_TASK_CODES = frozenset(
    {
        "content_policy_violation",
        "invalid_parameters",
        "image_processing_error",
        "image_dimension_mismatch",
        "generation_failed_no_content",
    }
)
TRANSIENT_TASK_CODES = frozenset(
    {
        "service_error",
        "generation_timeout",
        "resource_exhausted",
        "quota_exceeded",
        "service_unavailable",
        "unknown_error",
    }
)
RESUBMIT_TASK_CODES = frozenset({"request_cancelled"})
TASK_GONE_CODES = frozenset({"resource_not_found"})
ALL_TASK_CODES = PERMANENT_TASK_CODES | TRANSIENT_TASK_CODES | RESUBMIT_TASK_CODES | TASK_GONE_CODES


class ShotrunError(Exception):
    """Base of every error shotrun raises on purpose."""


class UsageError(ShotrunError, ValueError):
    """The command line asks for something that cannot be done."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a file something is (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a manifest: an error or a warning, located and explained."""

    location: Location
    path: str  # key path such as "shots[3].duration", "" for the whole file
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.location}: "
        what = f"{self.path}: " if self.path else ""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{where}{tag}{what}{self.message}"


class ManifestError(ShotrunError, ValueError):
    """A manifest is invalid; ``problems`` lists every error found (and the warnings)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        first = str(errors[0]) if errors else "invalid manifest"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


class StateError(ShotrunError):
    """The state store is unusable (locked by another run, newer schema, corrupt)."""


class StoreLocked(StateError):
    """Another process (a run) holds the store's writer lock; ``pid`` as it wrote it."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class StoreWriteFailed(StateError):
    """The store could not record a step of a command under way (disk full, read-only, gone).

    Its own type because what it means differs from a store that cannot be opened (exit 2,
    nothing sent, nothing written): by now things may have been submitted, paid and saved.
    Every step committed before is kept, so the next run, once the disk is fixed, continues
    from there (exit 4).
    """


class GatewayError(ShotrunError):
    """The gateway refused, failed, or could not be reached.

    ``code`` is the gateway's error code (HTTP error ``code``/``type`` or a task's business
    code) when there is one; ``status`` the HTTP status when there is one.
    """

    #: How long the gateway asked to wait before asking again (a 429's Retry-After), or
    #: None: every caller's backoff reads it the same way, whatever the error.
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.param = param


class TransientGatewayError(GatewayError):
    """Worth retrying later with backoff (5xx, transient business codes, resets)."""


class RateLimited(TransientGatewayError):
    """HTTP 429: wait ``retry_after`` seconds when given, and lower the pace."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ConnectionFailed(TransientGatewayError, OSError):
    """The connection failed (refused, reset, timed out).

    ``maybe_sent`` is True when the request may have reached the gateway before the failure;
    for a creation that makes the submission ambiguous.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True, **kw: object) -> None:
        GatewayError.__init__(self, message, **kw)  # type: ignore[arg-type]
        self.maybe_sent = maybe_sent


class GatewayUnreachable(ConnectionFailed):
    """The configured URL has not reached the gateway once in this run: nothing answered
    (refused, unknown name, no route, connect timeout) or something that is not the gateway
    did (an HTML page, a 404 on the creation endpoint).

    Its own type because the right reaction differs from a blip in the middle of a run: a
    wrong ``api.base_url`` never heals, so the run stops within seconds and says which URL it
    tried, instead of riding out minutes of backoff. Nothing reached the gateway
    (``maybe_sent`` is False). ``url`` is safe to show (no query string); ``retry`` is False
    when waiting cannot help (something else answered), True for a refused connection,
    which a gateway being restarted also gives.
    """

    def __init__(self, message: str, *, url: str, retry: bool = True, **kw: object) -> None:
        super().__init__(message, maybe_sent=False, **kw)
        self.url = url
        self.retry = retry


class PermanentGatewayError(GatewayError):
    """The request itself is wrong (400/403/404/413, request-side business codes)."""


class AuthenticationFailed(GatewayError):
    """HTTP 401: the key is wrong; nothing else will work either."""


class QuotaExhausted(GatewayError):
    """HTTP 402 or ``quota_exceeded``: out of credits; stop submitting, keep collecting."""


class AmbiguousSubmission(GatewayError):
    """A creation request was sent but its answer was lost: it may or may not be billed."""


class MalformedResponse(GatewayError, ValueError):
    """The gateway's answer is not what its documentation describes."""


class DownloadError(ShotrunError, OSError):
    """A result could not be downloaded and saved."""


class LinkExpired(DownloadError):
    """A result link answered 403/404/410: query the task again for a fresh link."""


class DownloadRefused(DownloadError):
    """The result cannot be saved as offered (larger than the cap, not an http(s) link).

    Retrying the same link would fail the same way; the take fails with this message.
    """


class VerifyError(ShotrunError, ValueError):
    """A saved output does not decode, or its duration or size is not what was asked."""
