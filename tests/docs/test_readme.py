"""The README's commands run as written: every ```sh block, on a fresh folder, on the emulator.

The README promises a newcomer that its commands work when pasted; this test pastes them. It
runs every ``sh`` block of README.md, and of each docs/ page marked ``<!-- run this ... -->``,
in order, in a fresh temporary folder holding a copy of ``manifests/`` (as the repository's
root does), with ``shotrun`` being the package under test. Conventions, honoured and counted:

* ``<!-- not run: REASON -->`` right before a block skips it (a real key, a server that runs
  until Ctrl-C); the reason is required.
* ``<!-- file: NAME -->`` right before a block writes its text to NAME (the README's first
  manifest), so later blocks can use it.
* The two set-up commands create a virtual environment (``python3 -m venv .venv && pip
  install ... && X``): only X runs, with ``.venv/bin/`` dropped (the interpreter running the
  tests is the environment); X being the test suite itself is not run again.
* ``. .venv/bin/activate`` is already true here and is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP_DEMO = ("python3 -m venv .venv && .venv/bin/pip install -e . && "
              ".venv/bin/shotrun run manifests/demo.yaml")
SETUP_TESTS = ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
               ".venv/bin/python -m pytest")
RUN_THIS = "<!-- run this"
_MARKER = re.compile(r"^<!--\s*(not run|file):\s*(.*?)\s*-->$")
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the marker comment right before it (if any)."""

    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    marker: str = ""  # "not run" or "file"
    argument: str = ""  # the reason, or the file name


def blocks(markdown: str) -> list[Block]:
    """Every fenced block at the top level of ``markdown`` (indented ones are examples)."""
    found: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        start = index
        end = start + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        marker = _MARKER.match(lines[start - 1].strip()) if start else None
        found.append(Block(fence.group(1), "\n".join(lines[start + 1:end]) + "\n", start + 1,
                           *(marker.groups() if marker else ("", ""))))
        index = end + 1
    return found


def runnable_script(block: Block) -> str:
    """The block's commands as they run here: set-up chains reduced to their last part."""
    script = []
    for line in block.text.splitlines():
        if line.strip() in (". .venv/bin/activate", "source .venv/bin/activate"):
            continue
        if line.startswith("python3 -m venv .venv && "):
            assert line in (SETUP_DEMO, SETUP_TESTS), f"a new set-up line: {line}"
            last = line.split(" && ")[-1].removeprefix(".venv/bin/")
            if last == "python -m pytest":
                continue  # the test suite, which is running this
            line = last
        script.append(line)
    return "\n".join(script) + "\n"


def pages() -> list[Path]:
    """README.md and the docs/ pages that promise their commands run."""
    marked = [page for page in sorted((REPO / "docs").glob("*.md"))
              if RUN_THIS in page.read_text(encoding="utf-8")]
    return [REPO / "README.md", *marked]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder like the repository's root, with ``shotrun`` on PATH being this code."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copytree(REPO / "manifests", folder / "manifests",
                    ignore=shutil.ignore_patterns("renders", "__pycache__"))
    shutil.copytree(REPO / "schemas", folder / "schemas")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "shotrun"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runner "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    for name in ("SHOTRUN_API_KEY", "SHOTRUN_PROVIDER", "FAL_KEY", "KLING_ACCESS_KEY",
                 "KLING_SECRET_KEY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_every_command_of_the_page_runs_as_written(page: Path, workdir: Path) -> None:
    ran, skipped = 0, []
    for block in blocks(page.read_text(encoding="utf-8")):
        where = f"{page.name}:{block.line}"
        if block.marker == "not run":
            assert block.argument, f"{where}: say why the block is not run"
            skipped.append(f"{where} ({block.argument})")
            continue
        if block.marker == "file":
            (workdir / block.argument).write_text(block.text, encoding="utf-8")
            continue
        if block.lang not in ("sh", "bash", "shell"):
            continue
        script = runnable_script(block)
        if not script.strip():
            why = ("the test suite's set-up: the suite is what runs this" if SETUP_TESTS in
                   block.text else "activating the environment: already true here")
            skipped.append(f"{where} ({why})")
            continue
        done = subprocess.run(["bash", "-euxo", "pipefail", "-c", script], cwd=workdir,
                              capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, (
            f"{where}: a command failed as written (exit {done.returncode}):\n"
            f"{done.stderr[-3000:]}\n{done.stdout[-2000:]}")
        ran += 1
    print(f"{page.name}: {ran} blocks run, {len(skipped)} not run: {'; '.join(skipped)}")
    assert ran, f"{page.name} promises commands that run, but none did"


def test_the_readme_keeps_its_two_set_up_commands() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines.count(SETUP_DEMO) == 1 and lines.count(SETUP_TESTS) == 1
    assert len(lines) <= 250


def test_the_readme_links_only_pages_that_exist() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / target).is_file(), target
    for page in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([\w./-]+\.(?:md|png|svg))", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} -> {target}"


def test_the_markers_are_read() -> None:
    page = ("<!-- not run: needs a real key -->\n```sh\nshotrun run x.yaml\n```\n\n"
            "<!-- file: a.yaml -->\n```yaml\nversion: 1\n```\n"
            "```sh\n. .venv/bin/activate\n" + SETUP_DEMO + "\n" + SETUP_TESTS + "\n```\n"
            "- an example:\n  ```sh\n  not at the top level\n  ```\n")
    found = blocks(page)
    assert [(b.lang, b.marker, b.argument) for b in found] == [
        ("sh", "not run", "needs a real key"), ("yaml", "file", "a.yaml"), ("sh", "", "")]
    assert runnable_script(found[2]) == "shotrun run manifests/demo.yaml\n"


def test_code_cites_only_docs_that_exist() -> None:
    """Comments cite docs/ pages of this repository, never documents it does not hold."""
    cited = re.compile(r"(?<![\w/.-])(?:docs/)?([\w-]+\.md)\b")
    missing = []
    for folder in ("runner", "tests", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for name in cited.findall(path.read_text(encoding="utf-8")):
                if name != "README.md" and not (REPO / "docs" / name).is_file():
                    missing.append(f"{path.relative_to(REPO)}: {name}")
    assert missing == []
