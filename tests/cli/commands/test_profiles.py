"""Gateway profiles: one per provider and URL, never overwriting another's (issue 22, part 6).

``probe --spend`` runs against emulators over loopback (each wire format its own); ``plan``
then reads the profile of the provider and URL it would send to, and only that one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from runner.emulator import run_emulator
from runner.media.profile import load_profile, profile_path
from tests.helpers.probe import KEY, fast_emulator, main_in_thread, write_manifest
from tests.helpers.providers import keys

FAST = ("--poll-min", "0.01", "--poll-max", "0.05")


async def _spend(manifest: Path, provider: str, key: str, scale: float) -> str:
    """``probe --spend`` at an emulator speaking ``provider``; the URL it was at."""
    settings = fast_emulator(output_scale=scale, api_key=key)
    async with run_emulator(settings, provider=provider) as emulator:
        code = await main_in_thread(["probe", str(manifest), "--spend", "--provider", provider,
                                     "--base-url", emulator.base_url, *FAST])
        assert code == 0
        return str(emulator.base_url)


def _sizes(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    capsys.readouterr()
    assert cli.main(["plan", *flags, "--json"]) == 0
    profile: dict[str, Any] = json.loads(capsys.readouterr().out)["profile"]
    return profile


async def test_a_fal_probe_keeps_the_gateways_profile_and_plan_reads_the_matching_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    fal_key = keys(monkeypatch, "fal")
    manifest = write_manifest(tmp_path)
    gateway_url = await _spend(manifest, "gateway", KEY, 0.125)  # 160x90
    fal_url = await _spend(manifest, "fal", fal_key, 0.25)  # 320x180
    out = tmp_path / "out"
    gateway = load_profile(out, gateway_url)
    fal = load_profile(out, f"{fal_url} (fal)")
    assert gateway is not None and gateway.sizes["720p 16:9"] == (160, 90)
    assert fal is not None and fal.sizes["720p 16:9"] == (320, 180)
    assert profile_path(out, gateway_url) != profile_path(out, f"{fal_url} (fal)")

    found = _sizes(capsys, str(manifest), "--base-url", gateway_url)
    assert found["expected_sizes"]["720p 16:9"] == {"size": [160, 90], "source": "observed"}
    assert found["path"] == str(profile_path(out, gateway_url))
    found = _sizes(capsys, str(manifest), "--provider", "fal", "--base-url", fal_url)
    assert found["expected_sizes"]["720p 16:9"] == {"size": [320, 180], "source": "observed"}
    assert found["line"].startswith(f"expected sizes: observed by `shotrun probe` of "
                                    f"{fal_url} (fal) on ")


def test_a_profile_learnt_on_the_built_in_emulator_leaves_a_real_gateway_nominal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_API_KEY", raising=False)
    manifest = write_manifest(tmp_path)
    assert cli.main(["probe", str(manifest), "--spend", *FAST]) == 0
    assert load_profile(tmp_path / "out", "emulator") is not None
    found = _sizes(capsys, str(manifest))  # the built-in emulator: its own profile
    assert found["expected_sizes"]["720p 16:9"]["source"] == "observed"
    found = _sizes(capsys, str(manifest), "--base-url", "https://gateway.example")
    assert found["expected_sizes"]["720p 16:9"] == {"size": [1280, 720], "source": "nominal"}
    assert found["line"] == (
        "expected sizes: nominal (the gateway profile was observed on the built-in emulator, "
        "not this gateway: `shotrun probe --spend` against this one learns it, "
        "paying for one task)")
