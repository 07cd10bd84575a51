"""The provider wire formats against golden files written from docs/providers.md.

Each request case is a canonical payload (what :func:`runner.wire.payload.build_payload` makes for
the gateway) and the body the provider's documentation describes for it; each answer case is
an answer in the documented shape and what shotrun must understand from it (a state, or an
error of the right kind with the provider's code). A change of translation that the
documentation does not back fails here first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.core import errors
from runner.wire import fal, kling
from runner.wire.protocol import TaskState

GOLDEN = Path(__file__).parent / "golden"
KLING = json.loads((GOLDEN / "kling.json").read_text())
FAL = json.loads((GOLDEN / "fal.json").read_text())


def _bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def _matches(state: TaskState, expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        got = getattr(state, name)
        assert (list(got) if isinstance(got, tuple) else got) == value, name


@pytest.mark.parametrize("case", KLING["requests"], ids=lambda c: c["name"])
def test_kling_request_bodies(case: dict[str, Any]) -> None:
    assert kling.translate(case["payload"]) == case["body"]


@pytest.mark.parametrize("case", KLING["answers"], ids=lambda c: c["name"])
def test_kling_answers(case: dict[str, Any]) -> None:
    _matches(kling.task_state(_bytes(case["answer"]), what="answer"), case["state"])


@pytest.mark.parametrize("case", KLING["errors"], ids=lambda c: c["name"])
def test_kling_error_codes(case: dict[str, Any]) -> None:
    body = _bytes(case["answer"])
    if case["status"] == 200:
        with pytest.raises(errors.GatewayError) as raised:
            kling.task_state(body, what="create task answer")
        error = raised.value
    else:
        error = kling.error_of(case["status"], body, operation="create task",
                               retry_after="2")
    assert type(error).__name__ == case["kind"]
    assert error.code == case["code"]
    # The status a caller reads: a refusal carried by an HTTP 200 counts as the 400 it is.
    refused_on_200 = case["status"] == 200 and case["kind"] == "PermanentGatewayError"
    assert error.status == (400 if refused_on_200 else case["status"])
    assert "\n" not in error.message and str(case["answer"]["code"]) in error.message
    if isinstance(error, errors.RateLimited) and case["status"] == 429:
        assert error.retry_after == 2.0


def test_kling_429_out_of_credits_is_not_a_rate_limit() -> None:
    """A client that read only the status would back off forever; the code says stop."""
    error = kling.error_of(429, _bytes({"code": 1102, "message": "used up"}),
                           operation="create task")
    assert isinstance(error, errors.QuotaExhausted)
    assert not isinstance(error, errors.TransientGatewayError)


@pytest.mark.parametrize("case", FAL["requests"], ids=lambda c: c["name"])
def test_fal_request_bodies(case: dict[str, Any]) -> None:
    app, body = fal.translate(case["payload"])
    assert app == case["app"]
    assert body == case["body"]


def test_fal_answers() -> None:
    submit = FAL["submit"]
    assert fal.submit_answer(_bytes(submit["answer"]), what="submit")[0] == submit["request_id"]
    for case in FAL["statuses"]:
        state = fal.status_of(_bytes(case["answer"]), "r1", what="status")
        if case["state"] is None:
            assert state is None  # completed: the result decides
        else:
            assert state is not None
            _matches(state, case["state"])
    result = fal.result_of(_bytes(FAL["result"]["answer"]), "r1", what="result")
    assert result.status == "completed" and result.results == (FAL["result"]["url"],)


@pytest.mark.parametrize("case", FAL["errors"], ids=lambda c: str(c["status"]))
def test_fal_errors(case: dict[str, Any]) -> None:
    error = fal.error_of(case["status"], _bytes(case["answer"]), operation="create task")
    assert type(error).__name__ == case["kind"]
    assert "\n" not in error.message


def test_fal_4k_is_its_own_app_and_the_tier_is_never_a_field() -> None:
    app, body = fal.translate({"model": "kling-o3-reference-to-video", "prompt": "p",
                               "resolution": "4k", "duration": 5})
    assert app.endswith("/o3/4k/reference-to-video")
    assert "resolution" not in body and "model" not in body and body["duration"] == "5"


def test_fals_queue_position_feeds_the_progress_panel() -> None:
    from rich.console import Console

    from runner.cli.progress import render_progress
    from runner.scheduler.snapshot import TakeProgress
    from tests.helpers.progress import snapshot

    takes = (TakeProgress("s01/take-1", "pending", 0, "req-1", queue_position=2),
             TakeProgress("s02/take-1", "processing", 0, "req-2"))
    console = Console(record=True, width=140)
    console.print(render_progress(snapshot(takes=takes), now=1000.0))
    text = console.export_text()
    assert "pending (#3 in queue)" in text and "processing" in text
