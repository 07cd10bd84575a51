"""Running the emulator: in-process for tests and ``api.base_url: emulator``, or as a command.

``run_emulator`` binds 127.0.0.1 on a free port by default and yields a handle with the
URLs to give the client, the counters, and the settings, which a test may replace while it
runs (``emulator.update(failure_rate=1.0)``) to move from one phase of a scenario to the
next without restarting the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiohttp import web

from runner.emulator.app import EmulatorCore
from runner.emulator.routes import build_app
from runner.emulator.settings import EmulatorSettings

log = structlog.get_logger()
_SHUTDOWN_TIMEOUT = 1.0  # seconds given to open requests (a throttled download) on exit


class RunningEmulator:
    """A live emulator: where it listens, what it counted, how it behaves."""

    def __init__(self, core: EmulatorCore, base_url: str) -> None:
        self._core = core
        self.base_url = base_url
        self.files_url = base_url

    @property
    def settings(self) -> EmulatorSettings:
        """The behaviour now in force; assign a new value to change it at once."""
        return self._core.settings

    @settings.setter
    def settings(self, value: EmulatorSettings) -> None:
        self._core.settings = value

    def update(self, **changes: Any) -> EmulatorSettings:
        """Change some settings (checked as a whole) and return the new ones."""
        self._core.settings = self._core.settings.replace(**changes)
        return self._core.settings

    def stats(self) -> dict[str, Any]:
        """The counters, the same body as ``GET /_emulator/stats``."""
        return self._core.stats_body()

    @property
    def core(self) -> EmulatorCore:
        """The emulator's internals (tasks, files), for white-box tests."""
        return self._core


@asynccontextmanager
async def run_emulator(
    settings: EmulatorSettings | None = None, *, host: str = "127.0.0.1", port: int = 0,
    provider: str = "gateway",
) -> AsyncIterator[RunningEmulator]:
    """Serve an emulator on ``host:port`` (0: a free port) for the life of the block,
    speaking ``provider``'s wire format (``gateway``, ``fal`` or ``kling``)."""
    core = EmulatorCore(settings or EmulatorSettings(), provider)
    core.now()  # bind the clock to this loop, so that stats() also works from sync code
    runner = web.AppRunner(build_app(core), access_log=None, handle_signals=False,
                           shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        url_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        base_url = f"http://{url_host}:{bound[1]}"
        core.set_base_url(base_url)
        log.debug("emulator_listening", base_url=base_url)
        yield RunningEmulator(core, base_url)
    finally:
        await core.close()
        await runner.cleanup()
        log.debug("emulator_stopped")
