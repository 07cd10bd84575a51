"""Settings precedence (flags > environment > manifest > defaults) and reading the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.core.errors import UsageError
from runner.core.model import ApiConfig, Budget, Manifest
from runner.core.redact import redact
from runner.providers.session import Overrides, read_api_key, resolve_config


def manifest(**api: object) -> Manifest:
    return Manifest(path=Path("/tmp/m/shots.yaml"), name="m", output_dir=Path("/tmp/m/out"),
                    api=ApiConfig(**api), budget=Budget(max_credits=500), takes=())  # type: ignore[arg-type]


def test_manifest_values_apply_without_flags_or_environment() -> None:
    config = resolve_config(manifest(base_url="https://gw.example/", concurrency=3,
                                     submit_rate=1.5, downloads=2), environ={})
    assert config.base_url == "https://gw.example"
    assert config.files_url is None
    assert (config.concurrency, config.submit_rate, config.downloads) == (3, 1.5, 2)
    assert config.max_credits == 500
    assert config.base_url_from == "manifest"
    assert not config.uses_emulator


def test_defaults_use_the_emulator() -> None:
    config = resolve_config(manifest(), environ={})
    assert config.uses_emulator
    assert config.concurrency == 4


def test_environment_beats_manifest_and_flags_beat_environment() -> None:
    m = manifest(base_url="https://manifest.example", files_url="https://files.manifest")
    env = {"SHOTRUN_BASE_URL": "https://env.example", "SHOTRUN_FILES_URL": "https://files.env"}
    config = resolve_config(m, environ=env)
    assert (config.base_url, config.files_url) == ("https://env.example", "https://files.env")
    assert config.base_url_from == "environment"
    config = resolve_config(m, Overrides(base_url="http://127.0.0.1:9", files_url=None,
                                         concurrency=9, max_credits=10), environ=env)
    assert config.base_url == "http://127.0.0.1:9"
    assert config.files_url == "https://files.env"
    assert config.concurrency == 9 and config.max_credits == 10


def test_manifest_files_url_does_not_follow_an_overridden_base_url() -> None:
    m = manifest(base_url="https://manifest.example", files_url="https://files.manifest")
    assert resolve_config(m, environ={}).files_url == "https://files.manifest"
    config = resolve_config(m, Overrides(base_url="http://127.0.0.1:9"), environ={})
    assert config.files_url is None


def test_emulator_can_be_chosen_by_flag() -> None:
    config = resolve_config(manifest(base_url="https://gw.example"),
                            Overrides(base_url="emulator"), environ={})
    assert config.uses_emulator


@pytest.mark.parametrize(("overrides", "env", "expected"), [
    pytest.param(Overrides(base_url="ftp://x"), {}, "--base-url", id="flag-scheme"),
    pytest.param(Overrides(), {"SHOTRUN_BASE_URL": "gateway.example"}, "SHOTRUN_BASE_URL",
                 id="env-no-scheme"),
    pytest.param(Overrides(files_url="emulator"), {}, "--files-url", id="files-emulator"),
    pytest.param(Overrides(concurrency=0), {}, "--concurrency", id="concurrency"),
    pytest.param(Overrides(downloads=0), {}, "--downloads", id="downloads"),
    pytest.param(Overrides(submit_rate=-1), {}, "--submit-rate", id="rate"),
    pytest.param(Overrides(max_credits=-5), {}, "--max-credits", id="credits"),
    pytest.param(Overrides(), {"SHOTRUN_BASE_URL": "https://"}, "SHOTRUN_BASE_URL",
                 id="env-no-host"),
])
def test_bad_values_are_usage_errors_naming_where(overrides: Overrides, env: dict[str, str],
                                                  expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        resolve_config(manifest(), overrides, environ=env)


def test_key_is_read_from_the_named_variable_and_registered_as_secret() -> None:
    config = resolve_config(manifest(base_url="https://gw.example", api_key_env="MY_KEY"),
                            environ={})
    key = read_api_key(config, {"MY_KEY": "sk-live-abcdef123456"})
    assert key == "sk-live-abcdef123456"
    assert redact("key sk-live-abcdef123456 leaked") == "key [REDACTED] leaked"


def test_missing_key_for_a_real_gateway_names_the_variable() -> None:
    config = resolve_config(manifest(base_url="https://gw.example", api_key_env="MY_KEY"),
                            environ={})
    with pytest.raises(UsageError) as info:
        read_api_key(config, {"MY_KEY": "  "})
    assert "MY_KEY" in str(info.value)


def test_the_emulator_needs_no_key_and_gets_a_fresh_secret_one() -> None:
    config = resolve_config(manifest(), environ={})
    first = read_api_key(config, {})
    second = read_api_key(config, {})
    assert first != second and len(first) > 20
    assert first not in redact(f"x {first} y")


def test_the_emulator_uses_the_environment_key_when_there_is_one() -> None:
    config = resolve_config(manifest(), environ={})
    assert read_api_key(config, {"SHOTRUN_API_KEY": "sk-env-0000"}) == "sk-env-0000"


async def test_the_built_in_emulator_is_started_with_the_generated_key() -> None:
    from runner.providers.session import open_session

    m = manifest(emulator={"queue_time": 0.01, "processing_time": 0.01, "render": "cached"})
    config = resolve_config(m, environ={})
    key = read_api_key(config, {})
    async with open_session(m, config, key) as session:
        assert session.emulator is not None
        assert session.base_url.startswith("http://127.0.0.1:")
        state = await session.gateway.create_task(
            {"model": "kling-o3-reference-to-video", "prompt": "hello", "duration": 3})
        assert state.task_id
        assert session.emulator.stats()["accepted_tasks"] == 1


def test_bad_emulator_settings_are_a_usage_error_naming_the_manifest() -> None:
    from runner.providers.session import emulator_settings

    with pytest.raises(UsageError, match=r"api\.emulator.*jitter"):
        emulator_settings(manifest(emulator={"jitter": 7}), "k" * 20)


def test_credentials_in_a_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(UsageError) as info:
        resolve_config(manifest(), Overrides(base_url="https://sk-secret-123:x@gw.example"),
                       environ={})
    assert "credentials" in str(info.value)
    assert "sk-secret-123" not in str(info.value)


def test_a_command_that_sends_nothing_still_hides_both_kling_keys() -> None:
    """review and export show manifest text: the secret key's variable and Kling's access key
    are registered from the environment, so a key pasted into a prompt is redacted."""
    from runner.wire.specs import register_environment_secrets

    secret, access = "SK-never-shown-0042", "AK-never-shown-0043"
    register_environment_secrets(manifest(provider="kling", api_key_env="KLING_SECRET_KEY"),
                                 {"KLING_SECRET_KEY": secret, "KLING_ACCESS_KEY": access})
    assert redact(f"a prompt with {secret} and {access}") == \
        "a prompt with [REDACTED] and [REDACTED]"
