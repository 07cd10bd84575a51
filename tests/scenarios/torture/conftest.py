"""The torture suite's switch: a short version of every scenario by default, the long one on demand.

The default test command runs each scenario with a handful of takes and tiny emulator times
(seconds in all), so that a regression in crash safety, chaos handling or security shows up
in every run. ``pytest --torture`` or ``SHOTRUN_TORTURE=1`` runs the overnight-grade version:
100+ takes, 25+ SIGKILLs at moments picked from real progress signals.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.torture import LONG, SHORT, Scale


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.torture)


@pytest.fixture
def scale(request: pytest.FixtureRequest) -> Scale:
    """How hard to push: :data:`LONG` with ``--torture`` or ``SHOTRUN_TORTURE=1``."""
    long = bool(request.config.getoption("--torture")) or os.environ.get("SHOTRUN_TORTURE") == "1"
    return LONG if long else SHORT
