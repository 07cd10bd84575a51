"""Shared fixtures: no test may write to the real $HOME; secrets are forgotten between tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.redact import forget_secrets


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    monkeypatch.delenv("SHOTRUN_FILES_URL", raising=False)
    yield
    forget_secrets()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
