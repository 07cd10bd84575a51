"""Turning a valid creation request into video bytes, off the event loop.

Pictures are gathered first, on the loop (the emulator's own uploads are read from memory;
other loopback URLs are fetched; anything else or anything unreachable becomes a plain
colour, never a failure, as the real gateway's pictures would still be "something"). Then
the CPU-heavy encoding runs in a small thread pool, so the server keeps answering polls
while it renders. ``render: cached`` shares one clip per (size, segment durations, audio)
between tasks, for benchmarks that create hundreds of tasks.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import aiohttp
import structlog
from PIL import Image

from runner.core.model import MAX_IMAGE_BYTES, frame_size
from runner.emulator.files import FileStore
from runner.emulator.validation import Creation
from runner.emulator.video import RenderSpec, Shot, plain_spec, render

log = structlog.get_logger()
_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5)
MIN_IMAGE_SIDE = 300
MAX_IMAGE_RATIO = 2.5


class ImageRejected(Exception):
    """A reference image breaks the model's documented rules: the task fails with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_image(data: bytes, url: str) -> None:
    """Raise :class:`ImageRejected` unless ``data`` is an image the model would take."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ImageRejected("image_processing_error", f"cannot read the image at {url}"
                            ) from None
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageRejected("image_dimension_mismatch",
                            f"{url} is {width}x{height}; each side must be >= {MIN_IMAGE_SIDE}")
    if max(width / height, height / width) > MAX_IMAGE_RATIO:
        raise ImageRejected("image_dimension_mismatch",
                            f"{url} is {width}x{height}; the aspect ratio must be within "
                            f"1:{MAX_IMAGE_RATIO} and {MAX_IMAGE_RATIO}:1")


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs whose host is a loopback address or ``localhost``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def output_size(creation: Creation, scale: float = 1.0) -> tuple[int, int]:
    """The emulator's output size: the nominal one, times ``output_scale`` when a test plays
    a gateway that renders other sizes, each side even (H.264's 4:2:0 needs it) and >= 16."""
    width, height = frame_size(creation.resolution, creation.aspect_ratio)
    if scale == 1.0:
        return width, height
    return (max(16, 2 * round(width * scale / 2)), max(16, 2 * round(height * scale / 2)))


class Renderer:
    """Makes the video of a task; owns the render thread pool and the ``cached`` clips."""

    def __init__(self, files: FileStore, workers: int | None = None) -> None:
        self.files = files
        self._pool = ThreadPoolExecutor(
            max_workers=workers or max(1, os.cpu_count() or 1), thread_name_prefix="emu-render"
        )
        self._cache: dict[tuple[int, int, tuple[int, ...], bool], asyncio.Future[bytes]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Stop rendering: pending renders are cancelled, running ones finish in background."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str) -> bytes | None:
        """An image's bytes from the own store or a loopback URL; None when unavailable."""
        file_id = self.files.own_file_id(url)
        if file_id is not None:
            stored = self.files.get(file_id)
            return stored.data if stored is not None else None
        if not is_loopback_url(url):
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_FETCH_TIMEOUT, trust_env=False)
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    return None
                data = await response.content.read(MAX_IMAGE_BYTES + 1)
                return data if len(data) <= MAX_IMAGE_BYTES else None
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def _maybe_fetch(self, url: str | None) -> bytes | None:
        return None if url is None else await self.fetch(url)

    async def spec_for(self, creation: Creation, label: str, check: bool = False,
                       scale: float = 1.0) -> RenderSpec:
        """The clip a request asks for, with its pictures fetched (and checked)."""
        width, height = output_size(creation, scale)
        sources: list[bytes | None] = []
        urls = creation.picture_urls()
        frames = (creation.start_image_url, creation.end_image_url)
        *fetched, start, end = await asyncio.gather(
            *(self.fetch(u) for u in urls), *(self._maybe_fetch(u) for u in frames))
        if check:
            named = [*zip(urls, fetched, strict=True), (creation.start_image_url, start),
                     (creation.end_image_url, end)]
            for url, data in named:
                if data is not None and url is not None:
                    check_image(data, url)
        references = [data for data in fetched if data is not None]
        count = len(creation.segments)
        for index in range(count):
            if index == 0 and start is not None:
                sources.append(start)
            elif index == count - 1 and end is not None and count > 1:
                sources.append(end)
            elif references:
                sources.append(references[index % len(references)])
            else:
                sources.append(None)
        shots = tuple(
            Shot(prompt, seconds, picture)
            for (prompt, seconds), picture in zip(creation.segments, sources, strict=True)
        )
        # A single segment ends on the end frame: blended in over its last frames.
        end_picture = end if count == 1 else None
        return RenderSpec(width, height, shots, creation.generate_audio, end_picture, label)

    async def render(self, creation: Creation, label: str, cached: bool,
                     on_rendered: Callable[[float], None], check_images: bool = False,
                     scale: float = 1.0) -> bytes:
        """The MP4 bytes for ``creation``; ``on_rendered(seconds)`` after each real render.

        Raises :class:`ImageRejected` when ``check_images`` and an image breaks the rules.
        """
        if cached:
            return await self._cached(creation, on_rendered, scale)
        spec = await self.spec_for(creation, label, check_images, scale)
        return await self._run(spec, on_rendered)

    async def _run(self, spec: RenderSpec, on_rendered: Callable[[float], None]) -> bytes:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        data = await loop.run_in_executor(self._pool, render, spec)
        on_rendered(time.perf_counter() - started)
        log.debug("emulator_rendered", width=spec.width, height=spec.height,
                  duration=spec.duration, size=len(data))
        return data

    async def _cached(self, creation: Creation, on_rendered: Callable[[float], None],
                      scale: float = 1.0) -> bytes:
        width, height = output_size(creation, scale)
        durations = tuple(seconds for _, seconds in creation.segments)
        key = (width, height, durations, creation.generate_audio)
        future = self._cache.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._cache[key] = future
            spec = plain_spec(width, height, durations, creation.generate_audio,
                              "cached clip")
            try:
                future.set_result(await self._run(spec, on_rendered))
            except BaseException as exc:
                del self._cache[key]
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved: other waiters re-raise it themselves
                raise
        return await asyncio.shield(future)
