"""Builders for ``shotrun probe`` tests: a manifest and a fast emulator.

Moved from ``tests.cli.commands.test_probe`` so that no test module imports another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from runner import cli
from runner.emulator import EmulatorSettings

KEY = "sk-probe-test-key-0123456789abcdef"


def write_manifest(root: Path, *, api: str = "", base_url: str = "emulator") -> Path:
    path = root / "shots.yaml"
    path.write_text(
        "version: 1\nname: probe-test\noutput_dir: out\n"
        f"api:\n  base_url: {base_url}\n  submit_rate: 100\n"
        "  emulator: {queue_time: 0.01, processing_time: 0.05, render: cached}\n"
        f"{api}"
        "defaults: {resolution: 720p, duration: 3}\n"
        "shots:\n"
        "  - id: s01\n    prompt: \"a lighthouse at dawn\"\n"
        "  - id: s02\n    prompt: \"waves\"\n    aspect_ratio: \"9:16\"\n"
        "  - id: s03\n    prompt: \"cliffs\"\n    resolution: 1080p\n",
        encoding="utf-8",
    )
    return path


def fast_emulator(**changes: Any) -> EmulatorSettings:
    base: dict[str, Any] = {"queue_time": 0.01, "processing_time": 0.05, "render": "cached",
                            "api_key": KEY, "retry_after": 0.01}
    base.update(changes)
    return EmulatorSettings(**base)


def main_in_thread(args: list[str]) -> Awaitable[int]:
    return asyncio.to_thread(cli.main, args)


@asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> AsyncIterator[str]:
    """``handler`` answering every path on a loopback port; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
