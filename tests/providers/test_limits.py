"""A provider's limits that differ from the gateway's are located manifest errors.

``shotrun validate`` finds them (exit 2, one line each: FILE:LINE:COL: path: message) before
anything is sent, for the manifest's ``api.provider``, ``--provider`` or
``SHOTRUN_PROVIDER``; the same manifest is valid for the gateway.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from tests.emulator.conftest import png_bytes

HEAD = "version: 1\nname: limits\n"


def manifest(tmp_path: Path, body: str, api: str = "  base_url: emulator\n") -> Path:
    (tmp_path / "a.png").write_bytes(png_bytes())
    path = tmp_path / "shots.yaml"
    path.write_text(f"{HEAD}api:\n{api}shots:\n{body}", encoding="utf-8")
    return path


def validate(path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    code = cli.main(["validate", str(path), *flags])
    return code, capsys.readouterr().out


URLS = "".join(f"      - https://cdn.example/{n}.jpg\n" for n in range(8))


@pytest.mark.parametrize(("body", "where", "words"), [
    ("  - id: s\n    prompt: p\n    resolution: 4k\n", ":8:17: shots[0].resolution:",
     "modes are std (720p) and pro (1080p)"),
    (f"  - id: s\n    prompt: p\n    images:\n{URLS}", ":9:7: shots[0].images:",
     "at most 7 images and elements"),
    ("  - id: s\n    prompt: \"@Element1 dances\"\n    images: [https://c.example/a.jpg]\n"
     "    elements:\n      - {video: https://c.example/v.mp4}\n"
     "      - {frontal: https://c.example/f.jpg, references: [https://c.example/r1.jpg,"
     " https://c.example/r2.jpg]}\n",
     ":10:7: shots[0].elements:", "at most 4 images and elements with a video subject"),
    ("  - id: s\n    multi_prompt:\n      - {prompt: \"" + "x" * 513 + "\", duration: 3}\n",
     ":8:18: shots[0].multi_prompt[0].prompt:", "at most 512 characters per multi-shot"),
])
def test_kling_limits_are_located_errors(body: str, where: str, words: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, body)
    assert validate(path, capsys)[0] == 0  # the gateway takes it
    code, out = validate(path, capsys, "--provider", "kling")
    assert code == 2
    lines = [line for line in out.splitlines() if "error" not in line.split(":")[0]]
    located = [line for line in lines if where in line]
    assert len(located) == 1 and words in located[0], out
    assert "Traceback" not in out


def test_the_manifests_own_provider_and_the_environment_choose_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = "  - id: s\n    prompt: p\n    resolution: 4k\n"
    path = manifest(tmp_path, body, api="  base_url: emulator\n  provider: kling\n")
    assert validate(path, capsys)[0] == 2
    assert validate(path, capsys, "--provider", "fal")[0] == 0  # the flag wins
    plain = manifest(tmp_path, body)
    monkeypatch.setenv("SHOTRUN_PROVIDER", "kling")
    assert validate(plain, capsys)[0] == 2
    monkeypatch.delenv("SHOTRUN_PROVIDER")
    assert validate(plain, capsys)[0] == 0


@pytest.mark.parametrize("provider", ["fal", "kling"])
def test_local_images_need_urls_on_a_real_provider(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = "  - id: s\n    prompt: \"@Image1\"\n    images: [a.png]\n"
    real = manifest(tmp_path, body, api=f"  provider: {provider}\n")
    code, out = validate(real, capsys)
    assert code == 2
    assert ":8:14: shots[0].images[0]:" in out and "takes images by URL only" in out
    # With the built-in emulator (which has a file service) the same shot is fine.
    emulated = manifest(tmp_path, body, api=f"  provider: {provider}\n  base_url: emulator\n")
    assert validate(emulated, capsys)[0] == 0


def test_wire_renames_are_the_gateways_only(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, "  - id: s\n    prompt: p\n",
                    api="  base_url: emulator\n  provider: fal\n  wire: {start_frame: x}\n")
    code, out = validate(path, capsys)
    assert code == 2 and "api.wire renames the gateway's fields" in out and ":6:3: api.wire:" in out


def test_an_unknown_provider_is_a_located_schema_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, "  - id: s\n    prompt: p\n", api="  provider: replicate\n")
    code, out = validate(path, capsys)
    assert code == 2 and ":4:13: api.provider:" in out and "kling" in out
