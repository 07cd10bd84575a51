"""The command line's contract: help, version, usage errors, exit codes, crash logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from runner.errors import EXIT_CRASH, EXIT_USAGE
from runner.redact import register_secret


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == EXIT_USAGE
    assert "usage: shotrun" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid choice" in err
    assert "Traceback" not in err


def test_unexpected_error_writes_redacted_crash_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    register_secret("sk-very-secret-key-123")
    with_result: list[int] = []
    with cli.exit_codes(with_result):
        raise RuntimeError("boom sk-very-secret-key-123")
    assert with_result == [EXIT_CRASH]
    err = capsys.readouterr().err
    assert "sk-very-secret-key-123" not in err
    assert "crash-" in err
    log_path = Path(err.split("the traceback is in ")[1].splitlines()[0].strip())
    text = log_path.read_text()
    assert "RuntimeError" in text
    assert "sk-very-secret-key-123" not in text
    assert log_path.stat().st_mode & 0o777 == 0o600
