"""Fixtures for manifest tests: a folder with real (and deliberately bad) image files.

Tests run inside that folder so that messages name ``m.yaml`` exactly as a user would see
them when validating a file next to them.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

Write = Callable[[str], Path]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A current directory holding image files: ok.png, ok2.jpg, small.png, text.png, big.jpg,
    folder.png (a directory) and gif/webp images."""
    Image.new("RGB", (400, 400), (10, 120, 200)).save(tmp_path / "ok.png")
    Image.new("RGB", (640, 360), (200, 120, 10)).save(tmp_path / "ok2.jpg")
    Image.new("RGB", (400, 400), (0, 0, 0)).save(tmp_path / "anim.gif")
    Image.new("RGB", (400, 400), (0, 0, 0)).save(tmp_path / "pic.webp")
    Image.new("RGB", (100, 100), (0, 0, 0)).save(tmp_path / "small.png")
    (tmp_path / "text.png").write_text("this is not an image\n")
    with (tmp_path / "big.jpg").open("wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0")
        handle.truncate(11 * 1024 * 1024)
    (tmp_path / "folder.png").mkdir()
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    os.chdir(tmp_path.parent)


@pytest.fixture
def write(workdir: Path) -> Write:
    """Write a manifest (dedented) as ``m.yaml`` in the work folder; returns its path."""

    def _write(text: str, name: str = "m.yaml") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return Path(name)

    return _write
