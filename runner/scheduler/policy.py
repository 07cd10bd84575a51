"""The one failure policy: what an error at each step of a take's life makes the run do.

Every gateway, download and check failure the scheduler meets is mapped here, once, to a
:class:`Decision`: a :class:`Reaction` and the details it needs (the failure's kind and code,
the stop reason, the ``Retry-After`` floor, what happens once the retries are used up). The
steps that meet errors (:mod:`~runner.scheduler.submit`, :mod:`~runner.scheduler.collect`)
call :func:`classify` and act on its answer in one place each; none of them decides by
itself what an error means. ``tests/scheduler/test_policy.py`` reads this module as a table.

The money rules it encodes (docs/reliability.md, docs/gateway-api.md "Errors"):

* a creation whose answer was lost or cannot be read may have made a task and billed it: it
  is *ambiguous* (counted; held, looked up, or resubmitted once per ``--ambiguous``), never
  "nothing was sent";
* a task that was paid for is never given up by the run: trouble asking about it *leaves*
  it at the gateway for the next run, and a result that cannot be saved as offered keeps
  the take *collectable* (its task id and link stay);
* only a creation that certainly created nothing (refused connection, 429, 5xx, 4xx) is
  rolled back and tried again, or failed with the gateway's words.

What each step does with the reaction (who counts tries, and against which limit) stays
with the step: the limits differ on purpose (a 429 has ``rate_limit_attempts``, a poll
``poll_error_limit``), and :attr:`Decision.give_up` says what happens when they are used up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runner.core.errors import (
    AmbiguousSubmission,
    AuthenticationFailed,
    ConnectionFailed,
    DownloadError,
    DownloadRefused,
    GatewayError,
    GatewayUnreachable,
    LinkExpired,
    MalformedResponse,
    PermanentGatewayError,
    QuotaExhausted,
    RateLimited,
    ShotrunError,
    TransientGatewayError,
    VerifyError,
)
from runner.scheduler.run_context import StopReason
from runner.wire.protocol import NOT_THE_GATEWAY


class Stage(StrEnum):
    """The step of a take's life an error happened in."""

    UPLOAD = "upload"  # its local media sent to the file service, before the creation
    CREATION = "creation"  # the request that creates (and bills) the task
    LOOKUP = "lookup"  # asking a provider with client-chosen ids what a lost creation made
    POLL = "poll"  # asking the paid task how it is doing
    LINK_REFRESH = "link_refresh"  # asking the paid task for a fresh result link
    DOWNLOAD = "download"  # fetching the result to the ``.part`` file
    VERIFY = "verify"  # decoding the saved file, then filing it


class Reaction(StrEnum):
    """What the step does about the error."""

    RETRY_NOW = "retry_now"  # try again at once (a file damaged on the way), or after a
    #                          quick first-contact retry (:mod:`~runner.scheduler.firstcontact`)
    BACK_OFF = "back_off"  # wait (backoff with jitter, ``retry_after`` a floor), try again
    HOLD_AMBIGUOUS = "hold_ambiguous"  # a creation that may have been billed: ambiguous
    STOP_RUN = "stop_run"  # the key is refused: stop everything at once (halt)
    STOP_SUBMITTING = "stop_submitting"  # out of credits: no more creations, collect the rest
    FAIL_TAKE = "fail_take"  # the take fails with ``kind`` and ``code``
    KEEP_COLLECTABLE = "keep_collectable"  # fails, but its paid task stays to collect
    REFRESH_LINK = "refresh_link"  # the result link expired: ask the task for a new one
    TASK_GONE = "task_gone"  # the provider no longer knows the paid task
    LEAVE = "leave"  # the paid task stays at the gateway for the next run to collect
    PROPAGATE = "propagate"  # not a failure this step knows: it is raised on


@dataclass(frozen=True, slots=True)
class Decision:
    """A :class:`Reaction` with the details acting on it needs."""

    reaction: Reaction
    #: The take's failure kind in the store (``permanent``, ``transient``, ``collectable``,
    #: ``quota``, ``auth``) when the reaction fails it, now or once ``give_up`` applies.
    kind: str | None = None
    #: The failure code recorded when the error carries none of its own.
    code: str | None = None
    #: Why the run stops (STOP_RUN, STOP_SUBMITTING, or a creation answered by something
    #: that is plainly not the service: HOLD_AMBIGUOUS and no more creations there).
    stop: StopReason | None = None
    #: The least wait before trying again, as the service asked (a 429's Retry-After).
    retry_after: float | None = None
    #: A 429 at the creation: the in-flight limit is lowered too.
    slow_down: bool = False
    #: An answer that cannot be read: counted apart (asking faster will not make it readable).
    unreadable: bool = False
    #: What happens when the step's tries for this reaction are used up.
    give_up: Reaction | None = None

    def code_of(self, exc: BaseException) -> str | None:
        """The failure code to record: the error's own, else this decision's default."""
        own = exc.code if isinstance(exc, GatewayError) else None
        return own or self.code


def classify(exc: BaseException, stage: Stage) -> Decision:
    """What ``exc``, raised at ``stage``, makes the run do (the whole policy, one table)."""
    return _CLASSIFIERS[stage](exc)


_PROPAGATE = Decision(Reaction.PROPAGATE)
_AUTH = Decision(Reaction.STOP_RUN, kind="auth", code="authentication_error",
                 stop=StopReason.AUTH)


def _upload(exc: BaseException) -> Decision:
    """Sending the take's media: nothing is paid yet, so the take may simply fail."""
    if isinstance(exc, AuthenticationFailed):
        return _AUTH
    if isinstance(exc, GatewayUnreachable):
        return Decision(Reaction.RETRY_NOW)
    if isinstance(exc, TransientGatewayError | MalformedResponse):
        return Decision(Reaction.BACK_OFF, kind="transient", code="upload_failed",
                        retry_after=exc.retry_after, give_up=Reaction.FAIL_TAKE)
    if isinstance(exc, GatewayError):
        return Decision(Reaction.FAIL_TAKE, kind="permanent", code="upload_refused")
    if isinstance(exc, ShotrunError | OSError):  # a local file missing or unreadable
        return Decision(Reaction.FAIL_TAKE, kind="permanent", code="media_unavailable")
    return _PROPAGATE


def _creation(exc: BaseException) -> Decision:
    """The creation: what certainly created nothing is rolled back; what may have is
    ambiguous. Only a 429's Retry-After is honoured here (a 5xx backs off by the policy)."""
    if isinstance(exc, RateLimited):
        return Decision(Reaction.BACK_OFF, kind="transient", code="rate_limit_error",
                        retry_after=exc.retry_after, slow_down=True,
                        give_up=Reaction.FAIL_TAKE)
    if isinstance(exc, MalformedResponse):
        # Whatever accepted it may have made a task; an HTML page also means no more
        # creations go there (it is not the service).
        stop = StopReason.UNREACHABLE if exc.code == NOT_THE_GATEWAY else None
        return Decision(Reaction.HOLD_AMBIGUOUS, code="ambiguous_submission", stop=stop)
    if isinstance(exc, AmbiguousSubmission):
        return Decision(Reaction.HOLD_AMBIGUOUS, code="ambiguous_submission")
    if isinstance(exc, GatewayUnreachable):  # never reached in this run: firstcontact.py
        return Decision(Reaction.RETRY_NOW)
    if isinstance(exc, ConnectionFailed):
        if exc.maybe_sent:
            return Decision(Reaction.HOLD_AMBIGUOUS, code="ambiguous_submission")
        return Decision(Reaction.BACK_OFF, kind="transient", code="connection_failed",
                        give_up=Reaction.FAIL_TAKE)
    if isinstance(exc, TransientGatewayError):
        return Decision(Reaction.BACK_OFF, kind="transient", give_up=Reaction.FAIL_TAKE)
    if isinstance(exc, QuotaExhausted):
        return Decision(Reaction.STOP_SUBMITTING, kind="quota", code="insufficient_quota",
                        stop=StopReason.QUOTA)
    if isinstance(exc, AuthenticationFailed):
        return _AUTH
    if isinstance(exc, GatewayError):
        # A refusal (400/403/413, or a status its docs do not list): no task was created.
        return Decision(Reaction.FAIL_TAKE, kind="permanent")
    return _PROPAGATE


def _lookup(exc: BaseException) -> Decision:
    """Looking a lost creation up by its id: when the answer cannot be had, the creation
    stays what it was, ambiguous (never "nothing was sent")."""
    if isinstance(exc, TransientGatewayError):
        return Decision(Reaction.BACK_OFF, retry_after=exc.retry_after,
                        give_up=Reaction.HOLD_AMBIGUOUS)
    if isinstance(exc, GatewayError):
        return Decision(Reaction.HOLD_AMBIGUOUS)
    return _PROPAGATE


def _asking_the_task(exc: BaseException, *, poll: bool) -> Decision:
    """A paid task's status or link: never given up, only left for the next run."""
    if isinstance(exc, AuthenticationFailed):
        return Decision(Reaction.STOP_RUN, stop=StopReason.AUTH, give_up=Reaction.LEAVE)
    if isinstance(exc, GatewayUnreachable):
        return Decision(Reaction.RETRY_NOW, give_up=Reaction.LEAVE)
    if isinstance(exc, PermanentGatewayError):  # 400/404: the task id is unknown or expired
        return Decision(Reaction.TASK_GONE, code="resource_not_found")
    if isinstance(exc, GatewayError):
        return Decision(Reaction.BACK_OFF, retry_after=exc.retry_after,
                        unreadable=poll and isinstance(exc, MalformedResponse),
                        give_up=Reaction.LEAVE)
    return _PROPAGATE


def _poll(exc: BaseException) -> Decision:
    return _asking_the_task(exc, poll=True)


def _link_refresh(exc: BaseException) -> Decision:
    return _asking_the_task(exc, poll=False)


def _download(exc: BaseException) -> Decision:
    """Fetching a paid result: its task keeps it, so nothing here makes a new creation."""
    if isinstance(exc, LinkExpired):  # 403/404/410 on the link: the task has a fresh one
        return Decision(Reaction.REFRESH_LINK, kind="transient", code="link_expired",
                        give_up=Reaction.FAIL_TAKE)
    if isinstance(exc, DownloadRefused):  # too large, not http(s): the next run asks again
        return Decision(Reaction.KEEP_COLLECTABLE, kind="collectable", code="download_refused")
    if isinstance(exc, DownloadError | TransientGatewayError | MalformedResponse):
        return Decision(Reaction.BACK_OFF, kind="transient", code="download_failed",
                        give_up=Reaction.FAIL_TAKE)
    if isinstance(exc, OSError):  # the local disk: full, read-only, gone
        return Decision(Reaction.FAIL_TAKE, kind="transient", code="disk_error")
    return _PROPAGATE


def _verify(exc: BaseException) -> Decision:
    """A saved file: fetched once more (maybe damaged on the way), then kept as rejected."""
    if isinstance(exc, VerifyError):
        return Decision(Reaction.RETRY_NOW, kind="collectable", code="verify_failed",
                        give_up=Reaction.KEEP_COLLECTABLE)
    if isinstance(exc, OSError):  # filing it: the local disk
        return Decision(Reaction.FAIL_TAKE, kind="transient", code="disk_error")
    return _PROPAGATE


_CLASSIFIERS = {
    Stage.UPLOAD: _upload,
    Stage.CREATION: _creation,
    Stage.LOOKUP: _lookup,
    Stage.POLL: _poll,
    Stage.LINK_REFRESH: _link_refresh,
    Stage.DOWNLOAD: _download,
    Stage.VERIFY: _verify,
}
