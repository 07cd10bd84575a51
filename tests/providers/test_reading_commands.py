"""After ``run --provider P``, the commands that read what it did take ``--provider P`` too.

The provider is part of every take's fingerprint (when it is not the gateway), so a command
loading the manifest for another provider than the run's sees every rendered take as
"changed since". ``status``, ``report``, ``export``, ``pick`` and ``review`` take the flag
(and ``SHOTRUN_PROVIDER``); ``plan`` takes ``--base-url`` as well, since a saved ``probe``
profile is keyed by the URL and the provider it was observed on. All through ``cli.main``
(``review`` as a real process), against the emulators on loopback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from aiohttp import ClientSession

from runner import cli
from runner.emulator import run_emulator
from runner.state import StateStore, store_path_for
from tests.helpers.probe import fast_emulator as probe_emulator
from tests.helpers.probe import write_manifest as probe_manifest
from tests.helpers.providers import keys
from tests.helpers.run import FAST_FLAGS, THREE, main_in_thread, write_manifest

STALE = "changed since"


@pytest.fixture
def rendered_on_kling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> Path:
    """A gateway manifest run to the end with ``--provider kling`` (the built-in emulator)."""
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), "--provider", "kling", *FAST_FLAGS]) == 0
    capsys.readouterr()
    return manifest


def test_status_with_the_runs_provider_shows_the_takes_done(
        rendered_on_kling: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["status", str(rendered_on_kling)]) == 0
    assert capsys.readouterr().out.count(STALE) == 3  # the manifest's own provider: gateway
    assert cli.main(["status", str(rendered_on_kling), "--provider", "kling"]) == 0
    out = capsys.readouterr().out
    assert STALE not in out and "3 takes: 3 done" in out
    monkeypatch.setenv("SHOTRUN_PROVIDER", "kling")
    assert cli.main(["status", str(rendered_on_kling), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [take["status"] for take in document["takes"]] == ["done"] * 3
    assert not any(STALE in (take["reason"] or "") for take in document["takes"])


def test_pick_export_and_report_with_the_runs_provider(
        rendered_on_kling: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = str(rendered_on_kling)
    assert cli.main(["pick", manifest, "s01", "2"]) == 2  # no finished take, for the gateway
    assert "not a finished take" in capsys.readouterr().err
    assert cli.main(["pick", manifest, "s01", "2", "--provider", "kling"]) == 0
    assert capsys.readouterr().out.startswith("picked s01 take 2")

    assert cli.main(["export", manifest, str(tmp_path / "wrong")]) == 0
    assert "0 clips" in capsys.readouterr().out
    assert cli.main(["export", manifest, str(tmp_path / "cut"), "--provider", "kling"]) == 0
    out = capsys.readouterr().out
    assert "2 clips" in out and "s01 take 2 (picked)" in out
    assert (tmp_path / "cut" / "01-s01.mp4").is_file()

    assert cli.main(["report", manifest]) == 0
    assert "3 takes: 3 new" in capsys.readouterr().out
    assert cli.main(["report", manifest, "--csv", "--provider", "kling"]) == 0
    assert "3 takes: 3 done" in capsys.readouterr().out


async def _review(manifest: Path, *flags: str, pick: bool = False
                  ) -> tuple[dict[str, object], str]:
    """``/api/state`` of a ``shotrun review`` process (after a pick of s01 take 2 that waits
    for a run holding the store, with ``pick``), and its stderr once stopped with Ctrl-C."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner", "review", str(manifest), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    writer = StateStore.open(store_path_for(manifest.parent / "out")) if pick else None
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("shotrun review: http://127.0.0.1:"), line
        base, token = line.split(": ", 1)[1].strip().split("/?token=")
        headers = {"X-Shotrun-Token": token}
        async with ClientSession() as session:
            if pick:
                async with session.post(base + "/api/pick", json={"shot": "s01", "take": 2},
                                        headers=headers) as response:
                    assert (await response.json())["state"] == "queued"
            async with session.get(base + "/api/state", headers=headers) as response:
                assert response.status == 200
                state: dict[str, object] = await response.json()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await proc.communicate()
        if writer is not None:
            writer.close()
    assert proc.returncode == (1 if pick else 0), err
    return state, err.decode()


async def test_review_with_the_runs_provider_rerenders_nothing(
        rendered_on_kling: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    assert (await _review(rendered_on_kling))[0]["rerender"] != {}
    state, err = await _review(rendered_on_kling, "--provider", "kling", pick=True)
    assert state["rerender"] == {}
    # The pick left waiting is to be typed again as it was made: for the run's provider.
    assert f": shotrun pick {rendered_on_kling} s01 2 --provider kling\n" in err


async def test_plan_base_url_finds_the_profile_probe_saved_for_that_url(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, "kling")
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    manifest = probe_manifest(tmp_path)  # api.base_url: emulator
    async with run_emulator(probe_emulator(api_key=expected, output_scale=0.25),
                            provider="kling") as emulator:
        url = emulator.base_url
        code = await main_in_thread(["probe", str(manifest), "--provider", "kling", "--spend",
                                     "--poll-min", "0.01", "--poll-max", "0.05",
                                     "--base-url", url])
    assert code == 0, capsys.readouterr()
    capsys.readouterr()

    assert cli.main(["plan", str(manifest), "--provider", "kling", "--base-url", url]) == 0
    out = capsys.readouterr().out
    assert f"expected sizes: observed by `shotrun probe` of {url} (kling) on " in out
    assert cli.main(["plan", str(manifest), "--provider", "kling", "--base-url", url,
                     "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)["profile"]
    assert profile["other_gateway"] is None and profile["base_url"] == f"{url} (kling)"
    assert profile["expected_sizes"]["720p 16:9"] == {"size": [320, 180], "source": "observed"}

    # Without the flag the plan is of the manifest's URL (the emulator), in Kling's words.
    assert cli.main(["plan", str(manifest), "--provider", "kling"]) == 0
    assert (f"expected sizes: nominal (the saved profile was observed on {url} (kling), not "
            "the built-in emulator (kling): `shotrun probe --spend` against this one learns it, "
            "paying for one task)") in capsys.readouterr().out


def test_without_the_runs_provider_status_report_and_export_say_which_to_add(
        rendered_on_kling: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run records its provider in the store: a reader loading the manifest for another
    one says so (every take would look changed), and says nothing when they agree."""
    hint = "the last run rendered with the Kling API (--provider kling)"
    for command in (["status", str(rendered_on_kling)],
                    ["report", str(rendered_on_kling)],
                    ["export", str(rendered_on_kling), str(tmp_path / "cut")]):
        cli.main(command)
        err = capsys.readouterr().err
        assert hint in err and "add --provider kling" in err, (command, err)
        cli.main([*command[:1], *command[1:], "--provider", "kling"])
        assert hint not in capsys.readouterr().err, command
    assert cli.main(["status", str(rendered_on_kling), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert hint in document["warning"]
    assert (document["provider"], document["last_run_provider"]) == ("gateway", "kling")
