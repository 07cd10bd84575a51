"""parse.py, fuzzed: whatever the bytes, only MalformedResponse (or a value) comes out."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.core.errors import MalformedResponse, PermanentGatewayError
from runner.wire.parse import (
    MAX_JSON_BYTES,
    parse_epoch,
    parse_error_body,
    parse_retry_after,
    parse_task,
    parse_upload,
)
from runner.wire.protocol import TASK_STATUSES, TaskState

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
# Objects that look like a task answer, with every field possibly of the wrong type.
task_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=20) | json_values,
        "status": st.sampled_from([*TASK_STATUSES, "queued", ""]) | json_values,
        "progress": st.integers(-5, 200) | st.floats() | json_values,
        "results": st.lists(st.text(max_size=30) | json_values, max_size=3) | json_values,
        "error": st.fixed_dictionaries({}, optional={"code": json_values,
                                                     "message": json_values}) | json_values,
        "task_info": st.fixed_dictionaries({}, optional={"estimated_time": json_values,
                                                         "video_duration": json_values}),
        "usage": st.fixed_dictionaries({}, optional={"credits_reserved": json_values}),
    },
)


def _check_task(body: bytes) -> None:
    try:
        state = parse_task(body)
    except MalformedResponse as exc:
        assert str(exc)
        assert len(str(exc)) < 600  # a message, not a dump of the body
        return
    assert isinstance(state, TaskState)
    assert state.status in TASK_STATUSES
    assert 0 <= state.progress <= 100
    assert all(isinstance(u, str) and u for u in state.results)
    for hint in (state.estimated_time, state.credits_reserved, state.video_duration):
        assert hint is None or (math.isfinite(hint) and hint >= 0)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(body: bytes) -> None:
    _check_task(body)


@FUZZ
@given(json_values)
def test_random_json(value: Any) -> None:
    _check_task(json.dumps(value).encode())


@FUZZ
@given(task_like)
def test_task_shaped_json_with_wrong_types(value: dict[str, Any]) -> None:
    _check_task(json.dumps(value).encode())


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_upload_answers(body: bytes) -> None:
    with contextlib.suppress(MalformedResponse, PermanentGatewayError):
        parse_upload(body)


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps({"error": v}).encode()))
def test_error_bodies_never_raise(body: bytes) -> None:
    parse_error_body(body)


@FUZZ
@given(st.text(max_size=40) | st.none())
def test_retry_after_never_raises(value: str | None) -> None:
    wait = parse_retry_after(value, now=1.7e9)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


@FUZZ
@given(json_values)
def test_epoch_never_raises(value: Any) -> None:
    stamp = parse_epoch(value)
    assert stamp is None or math.isfinite(stamp)


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"[" * 200_000, "nested too deeply"),
     (b'{"id": "t", "status": "pending", "progress": ' + b"9" * 5000 + b"}", "not valid JSON"),
     (b" " * (MAX_JSON_BYTES + 1), "larger than"),
     (b'{"id": "t", "status": "pending", "progress": Infinity}', "'progress'"),
     (b'{"id": "a b", "status": "pending"}', "characters outside"),
     (b'{"id": "' + b"x" * 300 + b'", "status": "pending"}', "longer than 256")],
    ids=["deep", "huge-int", "too-big", "infinity", "id-space", "id-long"],
)
def test_hostile_bodies(body: bytes, message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        parse_task(body)


def test_failed_task_with_code_and_message() -> None:
    body = {"id": "t1", "status": "failed", "progress": 40.6,
            "error": {"code": "generation_timeout", "message": "took too long"}}
    state = parse_task(json.dumps(body).encode())
    assert (state.error_code, state.error_message, state.progress) == (
        "generation_timeout", "took too long", 41)


def test_results_as_objects_with_url() -> None:
    body = {"id": "t1", "status": "completed", "results": [{"url": "https://x/v.mp4"}]}
    assert parse_task(json.dumps(body).encode()).results == ("https://x/v.mp4",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("1.5", 1.5), ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),
     ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0), ("later", None), ("", None)],
    ids=["seconds", "fraction", "date-ahead", "date-past", "garbage", "empty"],
)
def test_retry_after_forms(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=40.0) == expected


@pytest.mark.parametrize("nonsense", ["1e308", "-3", "NaN", "Infinity", "2e6", '"lots"'])
def test_nonsense_numbers_are_unknown_with_a_warning(nonsense: str) -> None:
    """Issue 21: ``credits: 1e308`` printed ``credits inf`` and a 309-digit number."""
    from runner.wire import parse

    parse._warned.clear()
    body = ('{"id": "t", "status": "processing", "usage": {"credits_reserved": N}, '
            '"task_info": {"estimated_time": N, "video_duration": N}}'
            ).replace("N", nonsense).encode()
    with structlog.testing.capture_logs() as logs:
        state = parse_task(body)
    assert (state.credits_reserved, state.estimated_time, state.video_duration) == (
        None, None, None)
    warned = {entry["field"] for entry in logs if entry["event"] == "provider_number_unreadable"}
    assert warned == {"usage.credits_reserved", "task_info.estimated_time",
                      "task_info.video_duration"}
    sane = parse_task(b'{"id": "t", "status": "processing", "usage": {"credits_reserved": 32.4}}')
    assert sane.credits_reserved == 32.4


def test_a_failed_tasks_huge_words_are_cut() -> None:
    body = {"id": "t1", "status": "failed",
            "error": {"code": "c" * 5000, "message": "m" * 60_000}}
    state = parse_task(json.dumps(body).encode())
    assert state.error_message is not None and state.error_code is not None
    assert len(state.error_message) < 400 and state.error_message.endswith("more characters)")
    assert len(state.error_code) < 200
