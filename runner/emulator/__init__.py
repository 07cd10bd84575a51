"""A local stand-in for the video gateway: its wire format, real videos, injectable faults.

Tests, demos and benchmarks talk to it over real HTTP on 127.0.0.1::

    async with run_emulator(EmulatorSettings(queue_time=0.05)) as emulator:
        client = GatewayClient(emulator.base_url, emulator.files_url, api_key)
        ...
        assert emulator.stats()["duplicate_payloads"] == 0

See :mod:`runner.emulator.settings` for every behaviour it can be given.
"""

from runner.emulator.server import RunningEmulator, run_emulator
from runner.emulator.settings import EmulatorSettings

__all__ = ["EmulatorSettings", "RunningEmulator", "run_emulator"]
