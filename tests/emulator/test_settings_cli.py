"""Settings from a manifest mapping or flags, and ``shotrun emulator`` as a command."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from runner.cli.commands.emulator import settings_from_args
from runner.core.errors import EXIT_INTERRUPTED, EXIT_USAGE
from runner.emulator import EmulatorSettings


def test_defaults_are_the_documented_ones() -> None:
    settings = EmulatorSettings()
    assert (settings.queue_time, settings.processing_time, settings.link_ttl) == (0.5, 3.0,
                                                                                  86400.0)
    assert settings.render == "full" and settings.api_key is None
    assert dict(settings.rates) == {"720p": 8.1, "1080p": 10.8, "4k": 16.2, "audio": 2.7}
    assert settings.upload_ttl == 72 * 3600


def test_from_mapping_takes_manifest_keys_and_turns_lists_into_tuples() -> None:
    settings = EmulatorSettings.from_mapping({
        "queue_time": 0.1, "failure_rate": 0.2, "failure_codes": ["service_error",
                                                                   "generation_timeout"],
        "error_rates": {429: 0.1, "503": 0.05}, "rates": {"720p": 5}, "seed": 3,
        "render": "cached", "concurrency_cap": 4,
    })
    assert settings.failure_codes == ("service_error", "generation_timeout")
    assert dict(settings.error_rates) == {"429": 0.1, "503": 0.05}
    assert settings.rates["720p"] == 5 and settings.rates["1080p"] == 10.8
    with pytest.raises(TypeError):
        settings.error_rates["500"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [({"queue_tme": 1}, "unknown emulator setting 'queue_tme'"),
     ({"failure_rate": 2}, "failure_rate must be between 0 and 1"),
     ({"render": "fast"}, "render must be one of"),
     ({"failure_codes": ["oops"]}, "failure_codes"),
     ({"error_rates": {"418": 0.5}}, "error_rates keys"),
     ({"concurrency_cap": 0}, "concurrency_cap"),
     ({"estimate_factor": 0}, "estimate_factor must be > 0"),
     ({"estimate_factor": -1.5}, "estimate_factor must be > 0"),
     ({"estimate_factor": float("nan")}, "estimate_factor must be > 0"),
     ({"queue_time": "soon"}, "invalid emulator settings"),
     ({"output_scale": 0}, "output_scale must be > 0"),
     ({"progress": "sometimes"}, "progress must be one of linear, none"),
     ({"fal_validation": "late"}, "fal_validation must be one of submit, queue")],
    ids=["typo", "rate", "render", "code", "status", "cap", "estimate-zero",
         "estimate-negative", "estimate-nan", "type", "scale-zero", "progress",
         "fal-validation"],
)
def test_from_mapping_refuses_bad_settings_with_the_key(data: dict[str, Any], fragment: str
                                                        ) -> None:
    with pytest.raises(ValueError, match=fragment):
        EmulatorSettings.from_mapping(data)


def test_every_setting_has_a_flag() -> None:
    parser = cli.build_parser()
    flags = set(parser._subparsers._group_actions[0].choices["emulator"]  # type: ignore[union-attr]
                ._option_string_actions)
    for field in dataclasses.fields(EmulatorSettings):
        flag = {"api_key": "--api-key-env", "error_rates": "--error-rate",
                "rates": "--rate", "unit_rates": "--unit-rate", "usd_rates": "--usd-rate",
                "accounts": "--account"}.get(field.name, "--" + field.name.replace("_", "-"))
        assert flag in flags, field.name
    args = parser.parse_args([
        "emulator", "--queue-time", "0.2", "--processing-time", "1", "--jitter", "0.1",
        "--render", "cached", "--concurrency-cap", "3", "--failure-rate", "0.5",
        "--failure-codes", "service_error,quota_exceeded", "--error-rate", "429=0.1",
        "--error-rate", "502=0.2", "--reset-rate", "0.01", "--truncate-rate", "0.02",
        "--link-ttl", "60", "--download-rate", "1000", "--seed", "9", "--upload-ttl", "10",
        "--retry-after", "0.5", "--rate", "720p=1", "--api-key-env", "EMU_KEY",
        "--check-images", "--credits", "500", "--estimate-factor", "0.5",
        "--fal-validation", "queue",
    ])
    settings = settings_from_args(args, {"EMU_KEY": "sk-from-env"})
    assert settings == EmulatorSettings(
        queue_time=0.2, processing_time=1, jitter=0.1, render="cached", concurrency_cap=3,
        failure_rate=0.5, failure_codes=("service_error", "quota_exceeded"),
        error_rates={"429": 0.1, "502": 0.2}, reset_rate=0.01, truncate_rate=0.02,
        link_ttl=60, download_rate=1000, seed=9, upload_ttl=10, retry_after=0.5,
        rates={**EmulatorSettings().rates, "720p": 1.0}, api_key="sk-from-env",
        check_images=True, credits=500.0, estimate_factor=0.5, fal_validation="queue",
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [(["--host", "0.0.0.0"], "loopback addresses only"),
     (["--failure-rate", "3"], "failure_rate must be between 0 and 1"),
     (["--error-rate", "429"], "--error-rate expects KEY=NUMBER"),
     (["--api-key-env", "SHOTRUN_TEST_UNSET_VAR"], "SHOTRUN_TEST_UNSET_VAR is not set"),
     (["--port", "70000"], "between 0 and 65535"),
     (["--estimate-factor", "0"], "estimate_factor must be > 0")],
    ids=["public-host", "bad-rate", "bad-pair", "unset-key", "bad-port", "bad-estimate"],
)
def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str],
                                    fragment: str) -> None:
    assert cli.main(["emulator", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_command_prints_its_url_and_stops_cleanly(repo_root: Path, sig: int) -> None:
    env = {**os.environ, "EMU_TEST_KEY": "sk-command-line-secret"}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "emulator", "--api-key-env", "EMU_TEST_KEY"],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # blocks until the server is listening
        assert url.startswith("http://127.0.0.1:")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        with opener.open(f"{url}/_emulator/stats", timeout=10) as response:
            assert response.status == 200
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err and "sk-command-line-secret" not in err


async def test_a_port_in_use_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from runner.emulator import run_emulator

    async with run_emulator() as running:
        port = running.base_url.rsplit(":", 1)[1]
        code = await asyncio.to_thread(cli.main, ["emulator", "--port", port])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [(["--rate", "720p=-1"], "rates[720p] must be a number >= 0"),
     (["--unit-rate", "720p=-1"], "unit_rates[720p] must be a number >= 0"),
     (["--usd-rate", "1080p=nan"], "usd_rates[1080p] must be a number >= 0"),
     (["--unit-rate", "4k=inf"], "unit_rates[4k] must be a number >= 0"),
     (["--usd-rate", "9000p=1"], "usd_rates keys must be among 720p, 1080p, 4k, audio")],
    ids=["negative-credits", "negative-units", "nan-dollars", "infinite-units",
         "unknown-resolution"],
)
def test_nonsense_prices_are_one_line_usage_errors(capsys: pytest.CaptureFixture[str],
                                                   argv: list[str], fragment: str) -> None:
    """A price flag with a negative, infinite or NaN price, or a resolution no provider
    renders, is refused before the emulator serves anything (it used to start and bill so)."""
    assert cli.main(["emulator", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_prices_in_a_manifest_mapping_are_checked_too() -> None:
    with pytest.raises(ValueError, match=r"rates\[audio\] must be a number >= 0"):
        EmulatorSettings.from_mapping({"rates": {"audio": -2.7}})
