"""Fixtures for the export tests: a two-shot manifest rendered on the built-in emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.export import run, write_manifest

TWO = """\
  - id: s01
    prompt: "a lighthouse at dawn"
  - id: s02
    prompt: "waves on @coast"
    images: [coast]
"""


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """The manifest of two shots (one with an image), each rendered once (one take)."""
    manifest = write_manifest(tmp_path, TWO)
    assert run(manifest) == 0
    return manifest
