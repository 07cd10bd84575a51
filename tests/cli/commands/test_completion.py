"""``shotrun completion bash|zsh|fish``: static scripts made by shtab from the real parser.

The bash script is sourced in a real bash and its completion function asked, as bash asks
it on Tab; zsh and fish are checked by their shells' syntax check when installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runner import cli
from runner.core.errors import EXIT_USAGE


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["completion", shell]) == 0
    return capsys.readouterr().out


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the command line ``words`` (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in words)
    line = " ".join(words)
    code = (f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE='{line}'; COMP_POINT={len(line)}; "
            f"_shtab_shotrun shotrun '{words[-1]}' '{words[-2]}'; "
            'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_flags_and_manifest_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "shotrun.bash"
    script.write_text(_script("bash", capsys), encoding="utf-8")
    assert _complete(script, "shotrun", "va") == ["validate"]
    assert _complete(script, "shotrun", "com") == ["completion"]
    assert _complete(script, "shotrun", "report", "--st") == ["--standalone", "--store"]
    assert "--provider" in _complete(script, "shotrun", "run", "--pro")
    (tmp_path / "shots.yaml").write_text("version: 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert _complete(script, "shotrun", "run", "shots") == ["shots.yaml"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_command_and_parse(
        shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _script(shell, capsys)
    for command in ("validate", "plan", "run", "status", "report", "completion"):
        assert command in text
    assert ("-l standalone" if shell == "fish" else "--standalone") in text
    if shutil.which(shell) is not None:
        path = tmp_path / f"shotrun.{shell}"
        path.write_text(text, encoding="utf-8")
        flag = "-n" if shell == "zsh" else "--no-execute"
        subprocess.run([shell, flag, str(path)], check=True)


def test_another_shell_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "tcsh"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["shotrun: error: completion: argument SHELL: invalid choice: 'tcsh' "
                   "(choose from 'bash', 'zsh', 'fish'); see `shotrun completion --help`"]
