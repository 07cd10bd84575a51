"""``shotrun init``: a starter project that renders as written, and never overwrites."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runner import cli
from runner.cli.commands.init import STARTER_FILES
from runner.core.errors import EXIT_OK, EXIT_USAGE


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_init_then_run_renders_on_the_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init", "x"]) == EXIT_OK
    assert "next: cd x && shotrun run shots.yaml" in capsys.readouterr().out
    manifest = (tmp_path / "x" / "shots.yaml").read_text()
    assert manifest.startswith("# yaml-language-server: $schema=manifest.schema.json\n")
    loaded = yaml.safe_load(manifest)
    assert loaded["api"]["base_url"] == "emulator"
    assert [shot["id"] for shot in loaded["shots"]] == ["s01-arrival", "s02-look"]
    assert loaded["elements"] and loaded["assets"]
    assert (tmp_path / "x" / ".gitignore").read_text().splitlines()[-1] == "renders/"

    monkeypatch.chdir(tmp_path / "x")
    assert cli.main(["run", "shots.yaml"]) == EXIT_OK
    outputs = sorted(p.relative_to(tmp_path / "x") for p in (tmp_path / "x").rglob("take-*.mp4"))
    assert [str(p) for p in outputs] == ["renders/x/s01-arrival/take-1.mp4",
                                         "renders/x/s01-arrival/take-2.mp4",
                                         "renders/x/s02-look/take-1.mp4"]


@pytest.mark.parametrize("existing", STARTER_FILES)
def test_a_second_init_is_refused_and_writes_nothing(
        tmp_path: Path, existing: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "x"
    (folder / "assets").mkdir(parents=True)
    (folder / existing).write_bytes(b"mine\n")
    before = _snapshot(folder)
    assert cli.main(["init", str(folder)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (f"shotrun: error: init: {folder / existing} already exists; nothing "
                   "written (choose another folder: shotrun init DIR)\n")
    assert _snapshot(folder) == before


def test_init_twice_in_the_same_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init"]) == EXIT_OK
    before = _snapshot(tmp_path)
    assert cli.main(["init", "."]) == EXIT_USAGE
    assert "shots.yaml already exists; nothing written" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_init_into_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    assert cli.main(["init", str(target)]) == EXIT_USAGE
    assert capsys.readouterr().err == (f"shotrun: error: init: {target} is a file, not a "
                                       "folder; name a new or empty folder\n")
    assert target.read_text() == "mine\n"
