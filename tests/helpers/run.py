"""Builders for run-level tests: a manifest on disk, a fast emulator, ``main`` in a thread.

Moved from ``tests.cli.commands.test_run`` so that no test module imports another."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from runner import cli
from runner.emulator import EmulatorSettings

KEY = "sk-test-run-command-0123456789"


FAST_FLAGS = ["--poll-min", "0.01", "--poll-max", "0.05", "--backoff-base", "0.01",
              "--backoff-cap", "0.05", "--submit-rate", "0"]


def write_manifest(root: Path, shots: str, *, api: str = "", budget: str = "") -> Path:
    path = root / "shots.yaml"
    path.write_text(
        "version: 1\nname: demo\noutput_dir: out\n"
        "api:\n  base_url: emulator\n  submit_rate: 50\n"
        "  emulator: {queue_time: 0.01, processing_time: 0.03, render: cached}\n"
        f"{api}{budget}"
        "defaults: {resolution: 720p, duration: 3}\n"
        f"shots:\n{shots}",
        encoding="utf-8",
    )
    return path


THREE = """\
  - id: s01
    prompt: "a lighthouse at dawn"
    takes: 2
    tags: [act1]
  - id: s02
    prompt: "waves on rocks"
    tags: [act2]
"""


def decodes(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert frames > 0
        return stream.codec_context.width, stream.codec_context.height


def fast_emulator(**changes: Any) -> EmulatorSettings:
    base: dict[str, Any] = {"queue_time": 0.01, "processing_time": 0.05, "render": "cached",
                            "api_key": KEY, "retry_after": 0.01}
    base.update(changes)
    return EmulatorSettings(**base)


def main_in_thread(args: list[str]) -> Any:
    return asyncio.to_thread(cli.main, args)


# --------------------------------------------------------------------- crash and resume
async def wait_for(predicate: Callable[[], bool], proc: asyncio.subprocess.Process,
                   timeout: float = 60.0) -> bool:
    """Until ``predicate()`` holds (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.returncode is not None:
            return False
        if time.monotonic() > deadline:
            raise AssertionError("no progress in time")
        await asyncio.sleep(0.002)
    return True


def store_rows(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return list(conn.execute("SELECT key, status FROM takes"))
    except sqlite3.Error:
        return []
