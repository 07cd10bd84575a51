"""Fixtures for the emulator's tests: a live emulator on 127.0.0.1 and a client session.

Tests talk to the emulator over real HTTP, like the runner does. Waiting is done by polling
the real endpoints in bounded loops (:func:`wait_for_status`), never by sleeping for a state.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from runner.core.model import MODEL_ID
from runner.emulator import EmulatorSettings, RunningEmulator, run_emulator

KEY = "sk-emulator-test-key"
FAST = EmulatorSettings(queue_time=0.05, processing_time=0.1, api_key=KEY, seed=7)
POLL_SECONDS = 60.0  # bounded loops: a broken emulator fails the test instead of hanging it


def polls(seconds: float = POLL_SECONDS) -> Iterator[int]:
    """Loop counts until a deadline: a bound by time, not by count, since a loaded machine
    (CI beside other work) renders slower while loopback answers just as fast (a bound of
    2,000 queries ran out before a 0.4 s task had rendered)."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        yield count
        count += 1


def payload(**changes: Any) -> dict[str, Any]:
    """A small valid creation body (3 s, 720p) with ``changes`` applied."""
    body: dict[str, Any] = {"model": MODEL_ID, "prompt": "A red kite over a grey sea",
                            "resolution": "720p", "aspect_ratio": "16:9", "duration": 3,
                            "generate_audio": False}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def png_bytes(width: int = 320, height: int = 320, colour: tuple[int, int, int] = (0, 200, 0)
              ) -> bytes:
    """A solid-colour PNG, built by hand so that the tests do not depend on Pillow's encoder."""
    raw = b"".join(b"\x00" + bytes(colour) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def jpeg_bytes(colour: tuple[int, int, int] = (200, 0, 0)) -> bytes:
    """A small JPEG of one colour."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 320), colour).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(FAST) as running:
        yield running


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=emulator.base_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as session:
        yield session


async def create(http: aiohttp.ClientSession, **changes: Any) -> dict[str, Any]:
    """Create a task and return its body (the creation must succeed)."""
    async with http.post("/v1/videos/generations", json=payload(**changes)) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


async def wait_for_status(http: aiohttp.ClientSession, task_id: str,
                          statuses: tuple[str, ...] = ("completed", "failed")
                          ) -> dict[str, Any]:
    """Poll the task until its status is one of ``statuses`` (bounded)."""
    for _ in polls():
        async with http.get(f"/v1/tasks/{task_id}") as response:
            body: dict[str, Any] = await response.json()
            assert response.status == 200, body
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.005)  # pacing between polls, not waiting for a state
    raise AssertionError(f"task {task_id} never reached {statuses}: {body}")


async def fetch(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, bytes]:
    async with http.get(url, **kw) as response:
        return response.status, await response.read()
