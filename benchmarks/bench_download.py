"""Download throughput: shotrun's downloader against ``curl -o`` on the same loopback URL.

A result link is only valid for 24 hours and renders can be large, so the downloader must not
be the slow part: it streams to a ``.part`` file, hashes SHA-256 on the way and fsyncs at the
end. The peer is curl (no hashing, no fsync) fetching the same file from the same server,
alternated with shotrun three times so that both see the same page cache and CPU. The server
is aiohttp's static file handler in its own process (sendfile), so the client being measured
does not share its CPU with the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row
from runner.gateway.client import GatewayClient

ROUNDS = 3
TARGET = 0.9
SERVER = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_static("/", sys.argv[1])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the static file server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # a benchmark waiting for a child process to bind, not a test
    raise RuntimeError("the static file server did not start")


def _make_file(path: Path, size: int) -> str:
    """``size`` bytes of incompressible data; returns their SHA-256."""
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
            digest.update(block)
    return digest.hexdigest()


async def _shotrun_download(url: str, part: Path) -> tuple[float, str]:
    async with GatewayClient(url.rsplit("/", 1)[0], None, _emu.KEY) as client:
        start = time.perf_counter()
        saved = await client.download(url, part)
        return time.perf_counter() - start, saved.sha256


def _curl(curl: str, url: str, dest: Path) -> float:
    start = time.perf_counter()
    subprocess.run([curl, "-s", "-f", "-o", str(dest), url], check=True)
    return time.perf_counter() - start


def run(quick: bool) -> list[dict[str, Any]]:
    """MiB/s of shotrun and of curl, median of alternated rounds, and their ratio."""
    _emu.quiet_logs()
    size = (128 if quick else 1024) * 1024 * 1024
    curl = shutil.which("curl")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "srv").mkdir()
        expected = _make_file(root / "srv" / "result.mp4", size)
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(root / "srv"), str(port)])
        try:
            _wait_listening(port, server)
            url = f"http://127.0.0.1:{port}/result.mp4"
            ours: list[float] = []
            theirs: list[float] = []
            for n in range(ROUNDS):
                part = root / f"ours-{n}.part"
                seconds, sha = asyncio.run(_shotrun_download(url, part))
                if sha != expected:
                    raise RuntimeError("shotrun's SHA-256 of the download is wrong")
                ours.append(size / seconds)
                part.unlink()
                if curl:
                    dest = root / f"curl-{n}.bin"
                    theirs.append(size / _curl(curl, url, dest))
                    dest.unlink()
        finally:
            server.terminate()
            server.wait()
    mib = 1024 * 1024
    ours_rate = statistics.median(ours) / mib
    label = f"download {size // mib} MiB over loopback"
    rows = [row(f"{label}: shotrun, SHA-256 + fsync (MiB/s)", round(ours_rate),
                "informative", f"rounds {', '.join(f'{r / mib:.0f}' for r in ours)}")]
    if not theirs:
        rows.append(row(f"{label}: shotrun / curl", "n/a", f">= {TARGET:g}", "curl not found",
                        None))
        return rows
    curl_rate = statistics.median(theirs) / mib
    ratio = ours_rate / curl_rate
    rows.append(row(f"{label}: curl -o (MiB/s)", round(curl_rate), "peer",
                    f"rounds {', '.join(f'{r / mib:.0f}' for r in theirs)}"))
    rows.append(row(f"{label}: shotrun / curl", round(ratio, 2), f">= {TARGET:g}",
                    "curl (no hash, no fsync)", ratio >= TARGET))
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
