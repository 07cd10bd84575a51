"""Local images on fal.ai and the Kling API are judged by where the command really sends.

Neither provider documents an upload service, so a local image (or a frame cut from another
shot) is a located manifest error for a real URL of theirs and fine for the built-in emulator,
which has its own file service. "Where it sends" is the run's own precedence: ``--base-url``
> ``SHOTRUN_BASE_URL`` > ``api.base_url`` (> the provider's documented URL), for ``run``,
``plan``, ``validate`` and ``probe`` alike. Everything goes through ``cli.main``; an emulator
on loopback stands for a "real" provider URL, and its counters prove nothing was sent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner import cli
from runner.core import log
from runner.emulator import run_emulator
from tests.emulator.conftest import png_bytes
from tests.helpers.providers import PROVIDERS, keys
from tests.helpers.run import FAST_FLAGS, fast_emulator, main_in_thread

ROOT = Path(__file__).resolve().parents[2]
REFUSED = "takes images by URL only"


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    """The emulator logs before ``cli.main`` configures logging: not onto stdout."""
    log.configure("warning")


def local_image_manifest(root: Path, api: str) -> Path:
    """A two-shot manifest: a local reference image, and a frame cut from the first shot."""
    (root / "a.png").write_bytes(png_bytes())
    path = root / "shots.yaml"
    path.write_text(
        "version: 1\nname: local\noutput_dir: out\n"
        f"api:\n{api}"
        "  emulator: {queue_time: 0.01, processing_time: 0.03, render: cached}\n"
        "defaults: {resolution: 720p, duration: 3}\n"
        "shots:\n"
        "  - id: s01\n    prompt: \"@Image1 at dawn\"\n    images: [a.png]\n"
        "  - id: s02\n    prompt: \"the same coast\"\n"
        "    start_frame: {from_shot: s01, frame: last}\n",
        encoding="utf-8")
    return path


def located(err: str, manifest: Path) -> list[str]:
    return [line for line in err.splitlines()
            if line.startswith(f"{manifest}:") and REFUSED in line]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_remote_base_url_flag_refuses_local_images_before_anything_is_sent(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest says `emulator`; `--base-url` sends elsewhere: exit 2, located, 0 sent."""
    expected = keys(monkeypatch, provider)
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    manifest = local_image_manifest(tmp_path, "  base_url: emulator\n")
    async with run_emulator(fast_emulator(api_key=expected), provider=provider) as emulator:
        for command in (["run", *FAST_FLAGS], ["plan"], ["validate"],
                        ["probe", "--poll-min", "0.01", "--poll-max", "0.05"]):
            code = await main_in_thread([command[0], str(manifest), "--provider", provider,
                                         "--base-url", emulator.base_url, *command[1:]])
            captured = capsys.readouterr()
            text = captured.err + captured.out  # validate prints its findings on stdout
            assert code == 2, (command, text)
            lines = located(text, manifest)
            assert [line.split(": ", 2)[1] for line in lines] == [
                "shots[0].images[0]", "shots[1].start_frame"], text
        stats = emulator.stats()
    assert stats["creation_requests"] == stats["uploads"] == stats["polls"] == 0
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_demo_with_a_provider_and_a_remote_url_is_refused_where_it_is_written(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, provider)
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    demo = tmp_path / "manifests" / "demo.yaml"
    async with run_emulator(fast_emulator(api_key=expected), provider=provider) as emulator:
        code = await main_in_thread(["run", str(demo), "--provider", provider,
                                     "--base-url", emulator.base_url, *FAST_FLAGS])
        stats = emulator.stats()
    assert code == 2
    assert any("shots[0].images[0]:" in line for line in located(capsys.readouterr().err, demo))
    assert stats["creation_requests"] == stats["uploads"] == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_documented_url_overridden_by_the_environment_to_the_emulator_renders(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`provider: kling` and no base_url is the real Kling API (refused); the README's way
    out, the emulator by SHOTRUN_BASE_URL or --base-url, renders local images and frames."""
    keys(monkeypatch, provider)
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    manifest = local_image_manifest(tmp_path, f"  provider: {provider}\n")
    assert cli.main(["validate", str(manifest)]) == 2
    assert len(located(capsys.readouterr().out, manifest)) == 2
    assert cli.main(["validate", str(manifest), "--base-url", "emulator"]) == 0
    assert cli.main(["plan", str(manifest), "--base-url", "emulator"]) == 0
    capsys.readouterr()

    monkeypatch.setenv("SHOTRUN_BASE_URL", "emulator")
    assert cli.main(["validate", str(manifest)]) == 0
    assert cli.main(["plan", str(manifest)]) == 0
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "done: 2/2" in capsys.readouterr().out
    # The flag wins over the environment, both ways.
    assert cli.main(["validate", str(manifest), "--base-url", "https://provider.example"]) == 2
    capsys.readouterr()

    monkeypatch.delenv("SHOTRUN_BASE_URL")
    assert cli.main(["run", str(manifest), "--base-url", "emulator", *FAST_FLAGS]) == 0
    capsys.readouterr()
    # status sends nothing: the run's takes show, whatever URL a run would go to next.
    assert cli.main(["status", str(manifest)]) == 0
    captured = capsys.readouterr()
    assert "2 takes: 2 done" in captured.out and "does not load" not in captured.err
