"""A manifest's warnings: in full once, then one line while the file gives the same ones.

``validate`` always prints them; ``plan`` and ``run`` print them in full the first time and
then a one-line reminder naming the command that lists them (issue 22, part 6).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from tests.helpers.run import FAST_FLAGS, write_manifest

WARNING = ("shots.yaml:11:13: warning: shots[0].prompt: @noon is not an asset or element name; "
           "it is sent as written")
REMINDER = ("shots.yaml: the same 1 warning as shown before; `shotrun validate shots.yaml` "
            "lists them again (it sends nothing)")


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_manifest(tmp_path, '  - id: s01\n    prompt: "a lighthouse at @noon"\n')
    return Path("shots.yaml")


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    out = capsys.readouterr()
    return (out.out + out.err).splitlines()


def test_validate_prints_them_then_plan_and_run_say_them_in_one_line(
        manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(manifest)]) == 0
    assert _lines(capsys) == [WARNING, "shots.yaml: valid (1 warning)"]
    assert cli.main(["validate", str(manifest)]) == 0  # asked for: always in full
    assert WARNING in _lines(capsys)
    assert cli.main(["plan", str(manifest)]) == 0
    lines = _lines(capsys)
    assert REMINDER in lines and WARNING not in lines
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    lines = _lines(capsys)
    assert REMINDER in lines and WARNING not in lines


def test_the_first_command_prints_them_in_full_and_a_changed_warning_prints_all_again(
        manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", str(manifest), "--provider", "gateway"]) == 0
    assert WARNING in _lines(capsys)
    assert cli.main(["plan", str(manifest), "--provider", "gateway"]) == 0
    assert ("shots.yaml: the same 1 warning as shown before; `shotrun validate shots.yaml "
            "--provider gateway` lists them again (it sends nothing)") in _lines(capsys)
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("@noon", "@noon and @dusk"), encoding="utf-8")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    lines = _lines(capsys)
    assert [line for line in lines if "warning: shots[0]" in line] == [
        "shots.yaml:11:13: warning: shots[0].prompt: @noon is not an asset or element name; "
        "it is sent as written",
        "shots.yaml:11:13: warning: shots[0].prompt: @dusk is not an asset or element name; "
        "it is sent as written",
    ]
