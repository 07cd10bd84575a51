"""The floors under shotrun's per-take CPU: the same HTTP work, with or without its promises.

``python -m benchmarks.floor BASE_URL TAKES CONCURRENCY [--durable]`` creates ``TAKES``
tasks on the gateway at ``BASE_URL`` with plain aiohttp, ``CONCURRENCY`` at a time, asks
each task's status until it completes, and streams its result to a file while hashing it
with SHA-256: the three requests per take shotrun makes. Run as a child process, its CPU
time is what the overhead benchmark prints beside shotrun's figure.

* Bare (the default): nothing else, no store, fsync, check, sidecar or log. The least any
  Python client on aiohttp could spend per take.
* ``--durable``: plus the least work that keeps the promises a user is sold (docs/reliability.md:
  outputs verified by decoding them before a take is called done; the brief: every state
  change that matters durable before the next step acts on it). Per take, in straight-line
  code with no layers: six SQLite transactions like shotrun's (an UPDATE of the take and an
  INSERT of its event each; the three that matter committed with ``synchronous=FULL``: the
  intent before the creation is sent, the task id, done), the take's folder made and flushed
  into its parent, the ``.part`` fsynced, the output checked with
  :func:`runner.media.verify.verify_video`
  (the same check shotrun runs: packets read, keyframes decoded), a sidecar written through a
  fsynced temp file, both renames and one folder flush. What shotrun spends beyond this is
  its own overhead (logs, progress, retries, pacing, layers); what this costs is the price of
  the guarantees on this machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

_PAYLOAD = {"model": "kling-o3-reference-to-video", "prompt": "the coast at dawn, slow dolly in",
            "resolution": "720p", "aspect_ratio": "16:9", "duration": 3}


class _Durable:
    """The promised work of one take, as bare as it can be written (see the module doc)."""

    def __init__(self, folder: Path, takes: int) -> None:
        import logging

        import structlog

        from runner.media.verify import verify_video  # the same check as shotrun's; libav is
                                                # loaded only by the durable floor
        # Its debug lines would cost what is measured: warnings only, as benchmarks run.
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        self.verify = verify_video
        self.folder = folder
        self.lock = threading.Lock()  # the loop and the checking thread share one connection
        self.db = sqlite3.connect(folder / "state.sqlite", isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE takes (id INTEGER PRIMARY KEY, status TEXT, task_id TEXT,"
                        " payload TEXT, output TEXT, sha256 TEXT, updated REAL)")
        self.db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, take INT,"
                        " kind TEXT, at REAL, data TEXT)")
        payload = json.dumps(_PAYLOAD)
        self.db.executemany("INSERT INTO takes (id, status, payload) VALUES (?, 'planned', ?)",
                            ((n, payload) for n in range(takes)))
        self.durable: bool | None = None

    def move(self, n: int, status: str, durable: bool, **data: str) -> None:
        now = time.time()
        with self.lock:
            if durable is not self.durable:
                self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self.durable = durable
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE takes SET status = ?, task_id = coalesce(?, task_id), "
                            "sha256 = coalesce(?, sha256), updated = ? WHERE id = ?",
                            (status, data.get("task_id"), data.get("sha256"), now, n))
            self.db.execute("INSERT INTO events (take, kind, at, data) VALUES (?, ?, ?, ?)",
                            (n, status, now, json.dumps(data)))
            self.db.execute("COMMIT")

    def take_folder(self, n: int) -> Path:
        folder = self.folder / f"s{n:06d}"
        os.mkdir(folder)
        _fsync_dir(self.folder)
        return folder

    def file(self, n: int, folder: Path, part: Path, sha256: str, size: int) -> None:
        """Check the output, write its sidecar, rename both into place, flush, mark done."""
        info = self.verify(part, duration=3, width=1280, height=720)
        video = folder / "take-1.mp4"
        sidecar = json.dumps({"take": n, "sha256": sha256, "size": size,
                              "duration": info.duration, "payload": _PAYLOAD}).encode()
        temp = folder / ".take-1.json.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, sidecar)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, folder / "take-1.json")
        os.replace(part, video)
        _fsync_dir(folder)
        self.move(n, "done", True, sha256=sha256)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _one(session: aiohttp.ClientSession, base_url: str, folder: Path, n: int,
               durable: _Durable | None) -> None:
    if durable:
        durable.move(n, "submitting", True)
    async with session.post(f"{base_url}/v1/videos/generations", json=_PAYLOAD) as resp:
        task_id = (await resp.json())["id"]
    if durable:
        durable.move(n, "submitted", True, task_id=task_id)
    while True:
        async with session.get(f"{base_url}/v1/tasks/{task_id}") as resp:
            data = await resp.json()
        if data["status"] == "completed":
            break
        if data["status"] == "failed":
            raise RuntimeError(f"task {task_id} failed")
        if durable:
            durable.move(n, "running", False)
        await asyncio.sleep(0.01)  # polling, as any client must; instant tasks need none
    if durable:
        durable.move(n, "completed", False)
        durable.move(n, "downloading", False)
    digest = hashlib.sha256()
    result = data["results"][0]
    take_folder = durable.take_folder(n) if durable else folder
    part = take_folder / (f"{n}.mp4" if not durable else "take-1.mp4.part")
    size = 0
    async with session.get(result["url"] if isinstance(result, dict) else result) as resp:
        with open(part, "wb") as out:
            async for chunk in resp.content.iter_chunked(1 << 16):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            if durable:
                out.flush()
                os.fsync(out.fileno())
    if durable:
        # In a thread, as any client that keeps its loop responsive must (shotrun does too).
        await asyncio.to_thread(durable.file, n, take_folder, part, digest.hexdigest(), size)


async def _main(base_url: str, takes: int, concurrency: int, key: str, durable: bool) -> None:
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}

    async def bounded(n: int) -> None:
        async with gate:
            await _one(session, base_url, folder, n, promised)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        promised = _Durable(folder, takes) if durable else None
        async with aiohttp.ClientSession(headers=headers) as session:
            await asyncio.gather(*(bounded(n) for n in range(takes)))
        if promised:
            promised.db.close()


if __name__ == "__main__":
    url, count, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    asyncio.run(_main(url.rstrip("/"), count, width, os.environ.get("SHOTRUN_BENCH_KEY", ""),
                      "--durable" in sys.argv[4:]))
