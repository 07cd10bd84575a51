"""Shared fixtures: no test may write to the real $HOME; secrets are forgotten between tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.core import log
from runner.core.redact import forget_secrets
from tests.helpers import postgres
from tests.helpers.postgres import PgServer


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("SHOTRUN_BASE_URL", raising=False)
    monkeypatch.delenv("SHOTRUN_FILES_URL", raising=False)
    monkeypatch.setenv("SHOTRUN_STORE_URL", "")  # restored to unset: main() may set it
    for name in ("SHOTRUN_STORE_URL", "PGPASSWORD", "PGHOST", "PGPORT", "PGUSER",
                 "PGDATABASE", "PGSERVICE", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)
    yield
    forget_secrets()
    # cli.main() configures structlog with the stderr of its moment (capsys's stream in a
    # test): point it back at whatever stderr is current, or later tests log into a closed
    # file.
    log.close_run_log()
    log.configure("warning", stream=_CurrentStderr())  # type: ignore[arg-type]


class _CurrentStderr:
    """A stream that writes to the ``sys.stderr`` of the moment of each write."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--torture", action="store_true", default=False,
                     help="run the long torture scenarios (also SHOTRUN_TORTURE=1)")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL cluster for the whole session (tests/helpers/postgres.py)."""
    server = postgres.start()
    if server is None:
        pytest.skip("PostgreSQL's binaries (initdb, pg_ctl) are not on this machine: "
                    "install Debian's postgresql package to run the team-store tests")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL (with its password) of a new, empty database of :func:`pg_server`."""
    return pg_server.database()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the PostgreSQL server ``postgres`` (``-m "not postgres"``
    leaves them out)."""
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
