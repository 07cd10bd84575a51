"""The issue's "Bad input" list, through the real command line.

Each bad input gives exactly one located, actionable line and exit code 2; never a traceback,
never a hang (the alias bomb is refused while parsing, long before it could expand).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner import cli
from runner.core.errors import EXIT_USAGE
from tests.manifest.conftest import Write

OK = "version: 1\nname: t\nshots:\n  - {id: a, prompt: p}\n"
SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a"


def _bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 12):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


TEXT_CASES = {
    "yaml_syntax_error": ("version: 1\nname: t\nshots: [\n", "YAML syntax error"),
    "tab_indentation": ("version: 1\nname: t\nshots:\n\t- {id: a, prompt: p}\n", "tab"),
    "wrong_type": (OK.replace("prompt: p", "prompt: p, duration: five"), "expected an integer"),
    "out_of_range": (OK.replace("prompt: p", "prompt: p, duration: 16"),
                     "16 is more than 15 (allowed 3..15)"),
    "unknown_key": (OK.replace("prompt: p", "prompt: p, duraton: 5"),
                    "did you mean 'duration'?"),
    "duplicate_key": ("version: 1\nname: t\nname: u\nshots:\n  - {id: a, prompt: p}\n",
                      "duplicate key 'name'"),
    "undefined_var": (OK.replace("prompt: p", "prompt: '${who} runs'"),
                      "undefined variable ${who}"),
    "dangling_at_reference": ("version: 1\nname: t\nelements:\n  hero: {frontal: ok.png}\n"
                              "shots:\n  - {id: a, prompt: '@hero runs'}\n",
                              "does not attach it"),
    "out_of_range_at_reference": (OK.replace("prompt: p", "prompt: '@Image2', images: [ok.png]"),
                                  "@Image2 points outside"),
    "missing_local_asset": (OK.replace("prompt: p", "prompt: p, images: [nope.png]"),
                            "no such file 'nope.png'"),
    "non_image_asset": (OK.replace("prompt: p", "prompt: p, images: [text.png]"),
                        "is not a JPEG, PNG, GIF or WebP image"),
    "file_url": (OK.replace("prompt: p", "prompt: p, images: ['file:///etc/passwd']"),
                 "file:// URLs are not allowed"),
    "secret_under_api": (f"version: 1\nname: t\napi:\n  api_key_env: {SECRET}\n"
                         "shots:\n  - {id: a, prompt: p}\n", "environment variable"),
    "python_object_tag": ("version: 1\nname: !!python/object/apply:os.system [echo hi]\n"
                          "shots:\n  - {id: a, prompt: p}\n", "YAML tag '!!python/object"),
    "alias_bomb": (_bomb(), "billion laughs"),
}
BYTES_CASES = {
    "zero_bytes": (b"", "is empty (0 bytes)"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    "not_utf8": (b"version: 1\nname: \xff\xfe\n", "not UTF-8"),
}
LOCATED = re.compile(r"^m\.yaml(:\d+:\d+)?: ")


def _one_located_line(capsys: pytest.CaptureFixture[str], needle: str) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert LOCATED.match(lines[0]), lines[0]
    assert needle in lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_bad_text_input(case: str, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    text, needle = TEXT_CASES[case]
    path = write(text)
    assert cli.main(["validate", str(path)]) == EXIT_USAGE
    line = _one_located_line(capsys, needle)
    assert SECRET not in line
    assert re.match(r"^m\.yaml:\d+:\d+: ", line), "text problems carry a line and column"


@pytest.mark.parametrize("case", sorted(BYTES_CASES))
def test_bad_bytes_input(case: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, needle = BYTES_CASES[case]
    (workdir / "m.yaml").write_bytes(data)
    assert cli.main(["validate", "m.yaml"]) == EXIT_USAGE
    _one_located_line(capsys, needle)


def test_missing_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "m.yaml"]) == EXIT_USAGE
    _one_located_line(capsys, "no such file")


def test_directory_instead_of_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "m.yaml").mkdir()
    assert cli.main(["validate", "m.yaml"]) == EXIT_USAGE
    _one_located_line(capsys, "is a directory")


@pytest.mark.parametrize("case", ["yaml_syntax_error", "alias_bomb", "secret_under_api"])
def test_plan_refuses_bad_input_the_same_way(case: str, write: Write,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    text, needle = TEXT_CASES[case]
    write(text)
    assert cli.main(["plan", "m.yaml"]) == EXIT_USAGE
    _one_located_line(capsys, needle)


def test_every_file_is_checked_even_when_one_fails(write: Write,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write("version: 1\nname: t\nshots: [\n", "bad.yaml")
    write(OK, "good.yaml")
    write("", "empty.yaml")
    assert cli.main(["validate", "bad.yaml", "good.yaml", "empty.yaml"]) == EXIT_USAGE
    out = capsys.readouterr().out
    assert out.startswith("bad.yaml:4:1: YAML syntax error")
    assert "good.yaml: valid" in out
    assert "empty.yaml: is empty" in out
