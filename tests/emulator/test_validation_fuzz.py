"""Whatever a client sends, validation answers a documented 400 or accepts: never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.emulator.responses import ApiError
from runner.emulator.validation import FIELDS, Creation, validate_creation
from tests.emulator.conftest import payload

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["https://cdn.example/a.png", "@Image1 @Element2",
                                              "720p", "9:16", "customize"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["prompt", "duration", "frontal_image_url",
                                       "reference_image_urls", "video_url", "x"]),
                      children, max_size=4),
    max_leaves=12,
)


def _check(body: Any) -> None:
    try:
        result = validate_creation(body)
    except ApiError as exc:
        assert exc.status == 400 and exc.body()["error"]["type"] == "invalid_request_error"
        return
    assert isinstance(result, Creation)
    assert 3 <= result.duration <= 15 and sum(s for _, s in result.segments) == result.duration


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), json_values, max_size=6))
def test_random_bodies_are_accepted_or_refused_with_400(changes: dict[str, Any]) -> None:
    _check(payload(**changes))


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_any_json_value_as_the_body(body: Any) -> None:
    _check(body)
