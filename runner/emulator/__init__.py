"""emulator: A local stand-in for the video gateway: its wire format, real videos, injectable
faults.

Tests, demos and benchmarks talk to it over real HTTP on 127.0.0.1::

    async with run_emulator(EmulatorSettings(queue_time=0.05)) as emulator:
        client = GatewayClient(emulator.base_url, emulator.files_url, api_key)
        ...
        assert emulator.stats()["duplicate_payloads"] == 0

See :mod:`runner.emulator.settings` for every behaviour it can be given.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.emulator.server import RunningEmulator, run_emulator
    from runner.emulator.settings import EmulatorSettings

__all__ = ["EmulatorSettings", "RunningEmulator", "run_emulator"]

# Loaded on first use, not with the package: the server brings aiohttp, PyAV and numpy (a
# third of a second), and `shotrun --help` only needs the settings' names for its flags.
_WHERE = {"EmulatorSettings": "runner.emulator.settings",
          "RunningEmulator": "runner.emulator.server", "run_emulator": "runner.emulator.server"}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'runner.emulator' has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)
