"""The client against the project's emulator: a whole task's life, and its injected faults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from runner.core.errors import AuthenticationFailed, DownloadError, GatewayError
from runner.core.model import MODEL_ID
from runner.emulator import EmulatorSettings, run_emulator
from runner.media.verify import verify_video
from runner.providers.download import finalize_download
from runner.providers.gateway.client import GatewayClient
from runner.wire.protocol import TaskState

from .conftest import FAST, KEY

SETTINGS = EmulatorSettings(queue_time=0.05, processing_time=0.1, api_key=KEY, seed=3)
POLLS = 2000


async def _finished(client: GatewayClient, task_id: str) -> TaskState:
    for _ in range(POLLS):
        state = await client.get_task(task_id)
        if state.status in ("completed", "failed"):
            return state
        await asyncio.sleep(0.005)  # pacing between polls, not waiting for a state
    raise AssertionError(f"task {task_id} never finished")


async def test_upload_create_poll_download_verify(tmp_path: Path) -> None:
    image = tmp_path / "ref.png"
    Image.new("RGB", (400, 400), (200, 30, 30)).save(image)
    async with (
        run_emulator(SETTINGS) as emulator,
        GatewayClient(emulator.base_url, emulator.files_url, KEY, timeouts=FAST) as client,
    ):
        uploaded = await client.upload_file(image, "image/png")
        assert uploaded.url.startswith("http") and uploaded.expires_at is not None
        created = await client.create_task({
            "model": MODEL_ID, "prompt": "a red square @Image1", "image_urls": [uploaded.url],
            "resolution": "720p", "aspect_ratio": "16:9", "duration": 3,
        })
        assert created.status == "pending" and created.credits_reserved
        done = await _finished(client, created.task_id)
        assert done.status == "completed", done
        part = tmp_path / "take-1.mp4.part"
        saved = await client.download(done.results[0], part)
        finalize_download(part, tmp_path / "take-1.mp4")
        info = verify_video(tmp_path / "take-1.mp4", duration=3, width=1280, height=720)
        assert saved.size == (tmp_path / "take-1.mp4").stat().st_size and info.height == 720


async def test_wrong_key_is_authentication_failed() -> None:
    async with (
        run_emulator(SETTINGS) as emulator,
        GatewayClient(emulator.base_url, None, "sk-wrong-key-000", timeouts=FAST) as client,
    ):
        with pytest.raises(AuthenticationFailed):
            await client.get_task("task-unknown")


async def test_truncated_downloads_finish_by_resuming(tmp_path: Path) -> None:
    settings = SETTINGS.replace(truncate_rate=0.6)
    async with (
        run_emulator(settings) as emulator,
        GatewayClient(emulator.base_url, None, KEY, timeouts=FAST) as client,
    ):
        created = await client.create_task({"model": MODEL_ID, "prompt": "waves",
                                            "duration": 3})
        done = await _finished(client, created.task_id)
        part = tmp_path / "v.part"
        cut = 0
        for _ in range(50):
            try:
                saved = await client.download(done.results[0], part)
                break
            except DownloadError:
                cut += 1
        else:
            raise AssertionError("never finished")
        assert cut >= 1  # the seeded emulator cuts the first attempt: this was a resume
        verify_video(saved.path, duration=3, width=1280, height=720)


async def test_chaos_only_ever_raises_project_errors() -> None:
    settings = SETTINGS.replace(error_rates={"429": 0.2, "500": 0.2, "503": 0.1},
                                reset_rate=0.2)
    seen: set[str] = set()
    async with (
        run_emulator(settings) as emulator,
        GatewayClient(emulator.base_url, None, KEY, timeouts=FAST) as client,
    ):
        for _ in range(40):
            try:
                await client.create_task({"model": MODEL_ID, "prompt": "x", "duration": 3})
                seen.add("ok")
            except GatewayError as exc:
                assert KEY not in str(exc)
                seen.add(type(exc).__name__)
    assert {"ok", "RateLimited", "TransientGatewayError", "AmbiguousSubmission"} <= seen
