"""The failure policy as a table: every error type at every stage of a take's life.

One case per (error, stage): the reaction :func:`runner.scheduler.policy.classify` answers.
The tests after the table hold the details the money rules hang on (what is ambiguous, what
stays collectable, what stops the run and why, which wait a 429 asks for).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from runner.core.errors import (
    AmbiguousSubmission,
    AuthenticationFailed,
    ConnectionFailed,
    DownloadError,
    DownloadRefused,
    GatewayUnreachable,
    LinkExpired,
    MalformedResponse,
    PermanentGatewayError,
    QuotaExhausted,
    RateLimited,
    TransientGatewayError,
    VerifyError,
)
from runner.providers.gateway.client import NOT_THE_GATEWAY
from runner.scheduler.policy import Decision, Reaction, Stage, classify
from runner.scheduler.run_context import StopReason

STAGES = (Stage.UPLOAD, Stage.CREATION, Stage.LOOKUP, Stage.POLL, Stage.LINK_REFRESH,
          Stage.DOWNLOAD, Stage.VERIFY)
# One letter per reaction, so that the table below reads as a grid.
B, N, H = Reaction.BACK_OFF, Reaction.RETRY_NOW, Reaction.HOLD_AMBIGUOUS
S, Q, F = Reaction.STOP_RUN, Reaction.STOP_SUBMITTING, Reaction.FAIL_TAKE
K, L, G = Reaction.KEEP_COLLECTABLE, Reaction.REFRESH_LINK, Reaction.TASK_GONE
P = Reaction.PROPAGATE
R = Reaction

ERRORS: dict[str, Callable[[], BaseException]] = {
    "rate_limited": lambda: RateLimited("429", retry_after=3.0, code="rate_limit_error",
                                        status=429),
    "server_error": lambda: TransientGatewayError("503", status=503),
    "reset_maybe_sent": lambda: ConnectionFailed("reset", maybe_sent=True),
    "refused_before_sending": lambda: ConnectionFailed("refused", maybe_sent=False),
    "unreachable": lambda: GatewayUnreachable("nothing answers", url="http://127.0.0.1:9"),
    "refused_request": lambda: PermanentGatewayError("400", code="invalid_request",
                                                     status=400),
    "auth": lambda: AuthenticationFailed("401", status=401),
    "quota": lambda: QuotaExhausted("402", status=402),
    "answer_lost": lambda: AmbiguousSubmission("timed out after sending"),
    "malformed": lambda: MalformedResponse("not JSON"),
    "not_the_service": lambda: MalformedResponse("an HTML page", code=NOT_THE_GATEWAY),
    "link_expired": lambda: LinkExpired("HTTP 410 on the result link"),
    "download_refused": lambda: DownloadRefused("larger than --max-result-size"),
    "download_error": lambda: DownloadError("connection reset mid-body"),
    "bad_file": lambda: VerifyError("does not decode"),
    "disk": lambda: OSError(errno.ENOSPC, "No space left on device"),
    "bug": lambda: KeyError("not a failure the policy knows"),
}

TABLE: dict[str, tuple[Reaction, ...]] = {
    #                        upload creation lookup poll refresh download verify
    "rate_limited":           (B,     B,       B,     B,   B,      B,       P),
    "server_error":           (B,     B,       B,     B,   B,      B,       P),
    "reset_maybe_sent":       (B,     H,       B,     B,   B,      B,       F),
    "refused_before_sending": (B,     B,       B,     B,   B,      B,       F),
    "unreachable":            (N,     N,       B,     N,   N,      B,       F),
    "refused_request":        (F,     F,       H,     G,   G,      P,       P),
    "auth":                   (S,     S,       H,     S,   S,      P,       P),
    "quota":                  (F,     Q,       H,     B,   B,      P,       P),
    "answer_lost":            (F,     H,       H,     B,   B,      P,       P),
    "malformed":              (B,     H,       H,     B,   B,      B,       P),
    "not_the_service":        (B,     H,       H,     B,   B,      B,       P),
    "link_expired":           (F,     P,       P,     P,   P,      L,       F),
    "download_refused":       (F,     P,       P,     P,   P,      K,       F),
    "download_error":         (F,     P,       P,     P,   P,      B,       F),
    "bad_file":               (F,     P,       P,     P,   P,      P,       N),
    "disk":                   (F,     P,       P,     P,   P,      F,       F),
    "bug":                    (P,     P,       P,     P,   P,      P,       P),
}

CASES = [pytest.param(name, stage, TABLE[name][i], id=f"{stage.value}-{name}")
         for name in ERRORS for i, stage in enumerate(STAGES)]


def test_the_table_covers_every_error_at_every_stage() -> None:
    assert set(TABLE) == set(ERRORS)
    assert all(len(row) == len(STAGES) for row in TABLE.values())
    assert set(STAGES) == set(Stage)


@pytest.mark.parametrize(("error", "stage", "reaction"), CASES)
def test_classify(error: str, stage: Stage, reaction: Reaction) -> None:
    assert classify(ERRORS[error](), stage).reaction is reaction


def _at(error: str, stage: Stage) -> Decision:
    return classify(ERRORS[error](), stage)


@pytest.mark.parametrize("error", ["reset_maybe_sent", "answer_lost", "malformed",
                                   "not_the_service"])
def test_a_creation_maybe_billed_is_ambiguous_never_not_sent(error: str) -> None:
    decision = _at(error, Stage.CREATION)
    assert decision.reaction is R.HOLD_AMBIGUOUS
    assert decision.code == "ambiguous_submission"


def test_a_creation_answered_by_something_else_also_stops_creations() -> None:
    assert _at("not_the_service", Stage.CREATION).stop is StopReason.UNREACHABLE
    assert _at("malformed", Stage.CREATION).stop is None


def test_a_lost_creation_that_cannot_be_looked_up_stays_ambiguous() -> None:
    assert _at("server_error", Stage.LOOKUP).give_up is R.HOLD_AMBIGUOUS
    assert _at("rate_limited", Stage.LOOKUP).retry_after == 3.0


@pytest.mark.parametrize("stage", [Stage.POLL, Stage.LINK_REFRESH])
@pytest.mark.parametrize("error", list(ERRORS))
def test_a_paid_task_is_never_failed_by_trouble_asking_about_it(error: str,
                                                                stage: Stage) -> None:
    decision = _at(error, stage)
    assert decision.reaction not in (R.FAIL_TAKE, R.KEEP_COLLECTABLE, R.HOLD_AMBIGUOUS)
    if decision.reaction in (R.BACK_OFF, R.RETRY_NOW, R.STOP_RUN):
        assert decision.give_up is R.LEAVE


def test_a_paid_result_that_cannot_be_saved_stays_collectable() -> None:
    refused = _at("download_refused", Stage.DOWNLOAD)
    assert (refused.kind, refused.code) == ("collectable", "download_refused")
    bad = _at("bad_file", Stage.VERIFY)
    assert bad.give_up is R.KEEP_COLLECTABLE
    assert (bad.kind, bad.code) == ("collectable", "verify_failed")


def test_a_429_at_the_creation_lowers_the_pace_and_honours_retry_after() -> None:
    decision = _at("rate_limited", Stage.CREATION)
    assert decision.slow_down and decision.retry_after == 3.0
    assert decision.give_up is R.FAIL_TAKE
    assert decision.code_of(ERRORS["rate_limited"]()) == "rate_limit_error"
    assert not _at("server_error", Stage.CREATION).slow_down


@pytest.mark.parametrize(("stage", "reason"), [(Stage.CREATION, StopReason.AUTH),
                                               (Stage.POLL, StopReason.AUTH),
                                               (Stage.UPLOAD, StopReason.AUTH)])
def test_a_refused_key_stops_the_run(stage: Stage, reason: StopReason) -> None:
    assert _at("auth", stage).stop is reason


def test_out_of_credits_stops_submitting_only() -> None:
    decision = _at("quota", Stage.CREATION)
    assert (decision.kind, decision.stop) == ("quota", StopReason.QUOTA)
    assert decision.code_of(ERRORS["quota"]()) == "insufficient_quota"


def test_only_unreadable_status_answers_are_counted_apart() -> None:
    assert _at("malformed", Stage.POLL).unreadable
    assert not _at("server_error", Stage.POLL).unreadable
    assert not _at("malformed", Stage.LINK_REFRESH).unreadable


@pytest.mark.parametrize(("error", "stage", "code"), [
    ("refused_before_sending", Stage.CREATION, "connection_failed"),
    ("server_error", Stage.UPLOAD, "upload_failed"),
    ("refused_request", Stage.UPLOAD, "invalid_request"),  # the gateway's own code wins
    ("disk", Stage.UPLOAD, "media_unavailable"),
    ("refused_request", Stage.POLL, "invalid_request"),
    ("link_expired", Stage.DOWNLOAD, "link_expired"),
    ("download_error", Stage.DOWNLOAD, "download_failed"),
    ("disk", Stage.DOWNLOAD, "disk_error"),
    ("disk", Stage.VERIFY, "disk_error"),
])
def test_the_failure_code_recorded(error: str, stage: Stage, code: str) -> None:
    assert _at(error, stage).code_of(ERRORS[error]()) == code
