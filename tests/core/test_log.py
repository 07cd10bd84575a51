"""Logging: JSON lines in ``run.log``, plain lines on the console, no secret in either.

The run log's line is redacted once, as a whole, after rendering: these tests hold it to
the guarantee for secrets JSON writes escaped (quotes, backslashes, non-ASCII), for values
shown through their ``repr``, and for events the console never shows.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from runner.core import log
from runner.core.redact import REDACTED, forget_secrets, redact_value, register_secret

PLAIN = "sk-live-0123456789abcdef"
AWKWARD = 'sk-"quoted"\\back\u00e9\U0001f511-tail'  # JSON escapes all of these


class Holder:
    """A value JSON cannot write: it appears through its repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Holder({self.text})"


def _forms(secret: str) -> tuple[str, ...]:
    """The secret as it is, and as JSON (ASCII) writes it inside a string."""
    return secret, json.dumps(secret)[1:-1]


def _setup(tmp_path: Path, level: str = "warning") -> tuple[io.StringIO, Path]:
    console = io.StringIO()
    log.configure(level, stream=console)
    path = tmp_path / "run.log"
    log.open_run_log(path)
    return console, path


def _emit_everything(secret: str) -> None:
    logger = structlog.get_logger()
    with structlog.contextvars.bound_contextvars(shot=f"s-{secret}", take=1):
        logger.debug("quiet_event", value=f"a {secret} b", number=7, nothing=None, flag=True)
        logger.info("nested_event", items=[secret, {"inner": f"x{secret}"}], pair=(1, secret))
        logger.warning("loud_event", error=f"said {secret}", holder=Holder(secret),
                       items=[f"in a list {secret}"], **{f"key-{secret}": 1})
    log.close_run_log()


@pytest.mark.parametrize("secret", [PLAIN, AWKWARD])
def test_no_secret_reaches_the_run_log_or_the_console(tmp_path: Path, secret: str) -> None:
    register_secret(secret)
    console, path = _setup(tmp_path)
    _emit_everything(secret)
    text = path.read_text(encoding="utf-8")
    shown = console.getvalue()
    for form in _forms(secret):
        assert form not in text
        assert form not in shown
    events = [json.loads(line) for line in text.splitlines()]  # still one JSON value a line
    assert [e["event"] for e in events] == ["quiet_event", "nested_event", "loud_event"]
    quiet, nested, loud = events
    assert quiet["value"] == f"a {REDACTED} b" and quiet["shot"] == f"s-{REDACTED}"
    assert (quiet["number"], quiet["nothing"], quiet["flag"]) == (7, None, True)
    assert nested["items"] == [REDACTED, {"inner": f"x{REDACTED}"}]
    assert nested["pair"] == [1, REDACTED]
    assert loud["holder"] == f"Holder({REDACTED})"
    assert loud[f"key-{REDACTED}"] == 1
    # The console shows the warning only, redacted: in a list, in a repr, in a key.
    assert "loud_event" in shown and "quiet_event" not in shown and "nested_event" not in shown
    assert f"said {REDACTED}" in shown and f"Holder({REDACTED})" in shown
    assert f"in a list {REDACTED}" in shown


def test_events_below_the_console_level_still_reach_the_run_log(tmp_path: Path) -> None:
    console, path = _setup(tmp_path, level="error")
    structlog.get_logger().debug("only_in_the_file", n=1)
    structlog.get_logger().error("in_both", n=2)
    log.close_run_log()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["event"], e["level"], e["n"]) for e in events] == [
        ("only_in_the_file", "debug", 1), ("in_both", "error", 2)]
    assert "in_both" in console.getvalue() and "only_in_the_file" not in console.getvalue()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_run_log_line_is_what_json_dumps_writes(tmp_path: Path) -> None:
    _, path = _setup(tmp_path)
    structlog.get_logger().info("shaped", path=Path("/x/y"), ratio=0.5, text="é \"q\"",
                                items=(1, "two"), mapping={"a": [None]})
    log.close_run_log()
    line = path.read_text(encoding="utf-8").rstrip("\n")
    event = json.loads(line)
    expected = {"path": repr(Path("/x/y")), "ratio": 0.5, "text": "é \"q\"",
                "items": [1, "two"], "mapping": {"a": [None]}, "event": "shaped",
                "level": "info", "timestamp": event["timestamp"]}
    assert line == json.dumps(expected)  # same keys, order, separators and escapes
    stamp = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 3600


@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_timestamps_are_datetimes_iso_text(ns: int) -> None:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
    assert log.iso_timestamp(ns) == moment.isoformat().replace("+00:00", "Z")


def test_whole_seconds_have_no_fraction() -> None:
    assert log.iso_timestamp(1_700_000_000 * 10**9) == "2023-11-14T22:13:20Z"
    assert log.iso_timestamp(1_700_000_000 * 10**9 + 999) == "2023-11-14T22:13:20Z"
    assert log.iso_timestamp(1_700_000_000 * 10**9 + 1000) == "2023-11-14T22:13:20.000001Z"


def test_redact_value_copies_containers_and_keeps_other_values() -> None:
    register_secret(PLAIN)
    inner = {"k": PLAIN}
    data: dict[Any, Any] = {"a": [inner, (PLAIN, 3)], PLAIN: None, 5: 1.5, "t": True}
    out = redact_value(data)
    assert out == {"a": [{"k": REDACTED}, (REDACTED, 3)], REDACTED: None, 5: 1.5, "t": True}
    assert out is not data and out["a"] is not data["a"] and out["a"][0] is not inner
    assert data[PLAIN] is None and inner == {"k": PLAIN}  # the input is left alone
    forget_secrets()
    again = redact_value(data)
    assert again == data and again is not data  # copied even with nothing to redact


def test_redact_value_reads_str_subclasses_as_text() -> None:
    from enum import StrEnum

    class Word(StrEnum):
        KEY = PLAIN
        OTHER = "other"

    register_secret(PLAIN)
    assert redact_value(Word.KEY) == REDACTED
    assert redact_value(Word.OTHER) is Word.OTHER
    assert redact_value({"w": [Word.KEY]}) == {"w": [REDACTED]}


def test_a_secret_inside_another_is_replaced_whole() -> None:
    register_secret("abcd")
    register_secret("xxabcdxx")
    assert redact_value("1 xxabcdxx 2 abcd") == f"1 {REDACTED} 2 {REDACTED}"


def test_a_cached_logger_follows_a_new_level_and_stream(tmp_path: Path) -> None:
    logger = structlog.get_logger()
    first = io.StringIO()
    log.configure("error", stream=first)
    logger.warning("hidden_at_error")  # the logger is built and cached here
    second = io.StringIO()
    log.configure("debug", stream=second)
    logger.debug("shown_at_debug")
    assert first.getvalue() == "" and "shown_at_debug" in second.getvalue()
    third = io.StringIO()
    assert log.redirect_console(third) is second
    logger.info("to_the_third")
    assert "to_the_third" in third.getvalue() and "to_the_third" not in second.getvalue()


def test_a_huge_value_is_cut_in_the_run_log_and_on_the_console(tmp_path: Path) -> None:
    """Issue 21: a library's message once carried a 55 KB video body into run.log."""
    console, path = _setup(tmp_path)
    body = "x" * 55_000
    structlog.get_logger().warning("download_retry", error=f"ClientResponseError: {body}",
                                   items=[body], delay=0.5)
    log.close_run_log()
    line = path.read_text(encoding="utf-8").rstrip("\n")
    assert len(line) < log.LINE_LIMIT
    event = json.loads(line)
    assert event["error"].startswith("ClientResponseError: xxx")
    assert event["error"].endswith("more characters)") and event["delay"] == 0.5
    assert all(len(shown) < log.LINE_LIMIT for shown in console.getvalue().splitlines())
    assert "more characters)" in console.getvalue()


def test_a_secret_percent_encoded_in_a_url_is_redacted() -> None:
    from urllib.parse import quote

    from runner.core.redact import redact

    secret = "sk-a/b+c=d"
    register_secret(secret)
    try:
        url = f"https://cdn.example/v.mp4?key={quote(secret, safe='')}"
        assert redact(url) == f"https://cdn.example/v.mp4?key={REDACTED}"
    finally:
        forget_secrets()
