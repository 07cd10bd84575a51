"""Fixes from a fresh-eyes review of the command line, each through ``cli.main``.

An output folder that is a file, ``-q``, where flags may go, the Ctrl-C lines, wording, the
chosen take in ``status``, stale clips left in an export folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from tests.commands.test_run import FAST_FLAGS, THREE, write_manifest


@pytest.mark.parametrize("command", [["run"], ["report"], ["status"], ["export", "DIR"],
                                     ["pick", "s01", "1"]])
def test_an_output_dir_that_is_a_file_is_one_located_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    (tmp_path / "out").write_text("hi\n", encoding="utf-8")
    argv = [command[0], str(manifest),
            *[str(tmp_path / "exported") if word == "DIR" else word for word in command[1:]]]
    if command[0] == "run":
        argv += FAST_FLAGS
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [f"{manifest}:3:13: output_dir: 'out' is a file, not a folder; move or "
                     "rename that file, or set output_dir to a folder"]
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "shots.yaml"]
    assert (tmp_path / "out").read_text(encoding="utf-8") == "hi\n"


def test_an_output_dir_below_a_file_names_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    text = manifest.read_text(encoding="utf-8").replace("output_dir: out", "output_dir: f/out")
    manifest.write_text(text, encoding="utf-8")
    (tmp_path / "f").write_text("hi\n", encoding="utf-8")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "output_dir: 'f/out' cannot be a folder: 'f' is a file" in err
    assert err.count("\n") == 1
