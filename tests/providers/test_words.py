"""fal.ai and Kling users are told about fal.ai and the Kling API, never about "the gateway".

A wrong URL, an answer that is not the provider's, a missing key and the expected sizes are
said with the provider's label (``runner.wire.specs.spec(name).label``); "named by
api.api_key_env" only when the manifest names that variable. The gateway's own words are
unchanged (pinned by tests/providers/gateway and tests/scenarios/torture). Through
``cli.main``, against loopback: a port nothing listens on, and a gateway emulator standing
for a wrong URL.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from runner import cli
from runner.emulator import run_emulator
from tests.helpers.providers import PROVIDERS, keys
from tests.helpers.run import FAST_FLAGS, THREE, fast_emulator, main_in_thread, write_manifest

LABELS = {"fal": "fal.ai", "kling": "the Kling API"}
ONE_TRY = ("--retries", "0", "--concurrency", "1", *FAST_FLAGS)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("provider", PROVIDERS)
def test_nothing_listening_names_the_provider(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    keys(monkeypatch, provider)
    manifest = write_manifest(tmp_path, THREE)
    base = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["run", str(manifest), "--provider", provider, "--base-url", base,
                     *ONE_TRY]) == 1
    captured = capsys.readouterr()
    assert (f"cannot connect to {LABELS[provider]} at {base} (connection refused): check "
            "api.base_url or --base-url") in captured.out + captured.err
    assert "the gateway" not in captured.out + captured.err


@pytest.mark.parametrize(("provider", "answer"), [
    ("kling", "HTTP 404 with JSON that is not the Kling API's"),
    ("fal", "HTTP 404 with JSON that is not fal.ai's"),
])
async def test_a_gateway_at_the_providers_url_is_not_taken_for_the_provider(
        provider: str, answer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The base URL is a gateway's (it answers JSON, but has no creation route of theirs):
    one line asking whether the URL is the provider, nothing rendered."""
    keys(monkeypatch, provider)
    manifest = write_manifest(tmp_path, THREE)
    async with run_emulator(fast_emulator(api_key=None)) as gateway:
        code = await main_in_thread(["run", str(manifest), "--provider", provider,
                                     "--base-url", gateway.base_url, *ONE_TRY])
        accepted = gateway.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 1 and accepted == 0
    assert f"answered {answer}: is api.base_url (or --base-url) {LABELS[provider]}?" in text
    assert "the gateway" not in text


@pytest.mark.parametrize(("provider", "variable", "words"), [
    ("fal", "FAL_KEY", "to your fal.ai key, or use --base-url emulator to try the built-in "
                       "fal.ai emulator"),
    ("kling", "KLING_SECRET_KEY", "to your Kling API secret key, or use --base-url emulator "
                                  "to try the built-in Kling API"),
])
def test_a_missing_key_names_the_provider_and_the_setting_only_when_the_manifest_has_it(
        provider: str, variable: str, words: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    keys(monkeypatch, provider)
    monkeypatch.delenv(variable)
    manifest = write_manifest(tmp_path, THREE)
    argv = ["run", str(manifest), "--provider", provider, "--base-url",
            "https://provider.example"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"shotrun: error: no API key: set the environment variable {variable} {words}\n")

    named = write_manifest(tmp_path, THREE, api="  api_key_env: MY_PROVIDER_KEY\n")
    assert cli.main(["run", str(named), *argv[2:]]) == 2
    assert ("no API key: set the environment variable MY_PROVIDER_KEY (named by "
            f"api.api_key_env) {words}") in capsys.readouterr().err


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refused_key_names_the_setting_only_when_the_manifest_has_it(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, provider, wrong=True)
    variable = "KLING_SECRET_KEY" if provider == "kling" else "FAL_KEY"
    manifest = write_manifest(tmp_path, THREE)
    async with run_emulator(fast_emulator(api_key=expected), provider=provider) as emulator:
        code = await main_in_thread(["run", str(manifest), "--provider", provider,
                                     "--base-url", emulator.base_url, *FAST_FLAGS])
    assert code == 1
    err = capsys.readouterr().err
    assert f"the API key comes from the environment variable {variable}" in err
    assert "api.api_key_env" not in err


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_saved_profile_is_said_of_the_provider(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["plan", str(manifest), "--provider", provider]) == 0
    out = capsys.readouterr().out
    assert (f"expected sizes: nominal (no saved profile of {LABELS[provider]}: "
            "`shotrun probe --spend` learns one, paying for one task)") in out
    assert cli.main(["plan", str(manifest)]) == 0  # the gateway's words stay
    assert ("expected sizes: nominal (no gateway profile: `shotrun probe --spend` learns one, "
            "paying for one task)") in capsys.readouterr().out


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_out_of_credits_and_the_tasks_left_behind_are_said_of_the_provider(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's summary names who said the account is out of credits."""
    expected = keys(monkeypatch, provider)
    manifest = write_manifest(tmp_path, THREE)
    # The balance is in the provider's unit (issue 21): less than one task on each.
    async with run_emulator(fast_emulator(api_key=expected, credits=0.01),
                            provider=provider) as emulator:
        code = await main_in_thread(["run", str(manifest), "--provider", provider,
                                     "--base-url", emulator.base_url, *FAST_FLAGS])
    assert code == 1
    out = capsys.readouterr().out
    assert f"{LABELS[provider]} says the account is out of credits" in out
    assert "the gateway" not in out
