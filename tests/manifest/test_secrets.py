"""Key-looking values under ``api`` are refused; ordinary settings are not mistaken for keys."""

from __future__ import annotations

import pytest

from runner import cli
from runner.core.errors import EXIT_OK, EXIT_USAGE
from runner.manifest.secrets import looks_like_secret
from tests.manifest.conftest import Write

KEYS = ["sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2", "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e",
        "sk-abc123def456", "Bearer abcdefgh12345", "550e8400-e29b-41d4-a716-446655440000",
        "23780a5c58b133a905347de839099570f637dd94", "a1B2c3D4e5F6g7H8i9J0k1L2",
        "https://user:pa55word@gw.example/v1", "https://gw.example/v1?api_key=abcdef123456"]
NOT_KEYS = ["kling-o3-reference-to-video", "SHOTRUN_API_KEY", "https://gateway.example/v1",
            "emulator", "image_start", "gpt-4o-mini-2024-07-18", "reference_image_urls",
            "api-gateway-production-eu", "https://files.example/api/v1?region=eu-west-1"]


@pytest.mark.parametrize("value", KEYS)
def test_key_shapes_are_recognised(value: str) -> None:
    assert looks_like_secret(value)


@pytest.mark.parametrize("value", NOT_KEYS)
def test_settings_are_not_keys(value: str) -> None:
    assert not looks_like_secret(value)


@pytest.mark.parametrize(("field", "value"), [
    ("base_url", "https://user:pa55word@gw.example"),
    ("files_url", "https://files.example/?token=abcdef123456"),
    ("model", "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2"),
    ("api_key_env", "a1B2c3D4e5F6g7H8i9J0k1L2"),
])
def test_refused_in_any_api_field_without_echo(field: str, value: str, write: Write,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    env = "" if field == "api_key_env" else "  api_key_env: MY_KEY\n"
    write(f"version: 1\nname: t\napi:\n{env}  {field}: '{value}'\n"
          "shots:\n  - {id: a, prompt: p}\n")
    assert cli.main(["validate", "m.yaml"]) == EXIT_USAGE
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1 and value not in out
    expected_env = "SHOTRUN_API_KEY" if field == "api_key_env" else "MY_KEY"
    assert lines[0].startswith(f"m.yaml:{5 if env else 4}:")
    assert f"variable {expected_env}" in lines[0]


def test_ordinary_api_settings_pass(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    write("version: 1\nname: t\napi:\n  base_url: https://gateway.example/v1\n"
          "  files_url: https://files.example\n  model: kling-o3-reference-to-video\n"
          "  api_key_env: SHOTRUN_API_KEY\n  wire: {start_frame: image_start}\n"
          "shots:\n  - {id: a, prompt: p}\n")
    assert cli.main(["validate", "m.yaml"]) == EXIT_OK
