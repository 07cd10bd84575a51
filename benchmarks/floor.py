"""The floor under shotrun's per-take CPU: the same HTTP work with nothing else.

``python -m benchmarks.floor BASE_URL TAKES CONCURRENCY`` creates ``TAKES`` tasks on the
gateway at ``BASE_URL`` with plain aiohttp, ``CONCURRENCY`` at a time, asks each task's
status until it completes, and streams its result to a file while hashing it with SHA-256:
the three requests per take shotrun makes, minus everything that makes shotrun safe (no
store, no fsync, no verification, no sidecar, no logs, no retries). Run as a child process,
its CPU time is the least any Python client on aiohttp could spend per take, which is the
physical limit the overhead benchmark prints beside shotrun's figure.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import aiohttp

_PAYLOAD = {"model": "kling-o3-reference-to-video", "prompt": "the coast at dawn, slow dolly in",
            "resolution": "720p", "aspect_ratio": "16:9", "duration": 3}


async def _one(session: aiohttp.ClientSession, base_url: str, folder: Path, n: int) -> None:
    async with session.post(f"{base_url}/v1/videos/generations", json=_PAYLOAD) as resp:
        task_id = (await resp.json())["id"]
    while True:
        async with session.get(f"{base_url}/v1/tasks/{task_id}") as resp:
            data = await resp.json()
        if data["status"] == "completed":
            break
        if data["status"] == "failed":
            raise RuntimeError(f"task {task_id} failed")
        await asyncio.sleep(0.01)  # polling, as any client must; instant tasks need none
    digest = hashlib.sha256()
    result = data["results"][0]
    async with session.get(result["url"] if isinstance(result, dict) else result) as resp:
        with open(folder / f"{n}.mp4", "wb") as out:
            async for chunk in resp.content.iter_chunked(1 << 16):
                digest.update(chunk)
                out.write(chunk)


async def _main(base_url: str, takes: int, concurrency: int, key: str) -> None:
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}

    async def bounded(n: int) -> None:
        async with gate:
            await _one(session, base_url, folder, n)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with aiohttp.ClientSession(headers=headers) as session:
            await asyncio.gather(*(bounded(n) for n in range(takes)))


if __name__ == "__main__":
    url, count, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    asyncio.run(_main(url.rstrip("/"), count, width, os.environ.get("SHOTRUN_BENCH_KEY", "")))
