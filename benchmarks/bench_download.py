"""Download throughput: shotrun's downloader against ``curl -o`` on the same loopback URL.

A result link is only valid for 24 hours and renders can be large, so the downloader must not
be the slow part: it streams to a ``.part`` file, hashes SHA-256 on the way and fsyncs at the
end. The peer is curl fetching the same file from the same server, alternated with shotrun
(which one goes first alternates too) so that both see the same page cache and CPU.

The server is aiohttp's static file handler in a process of its own (sendfile, a few
hundredths of a CPU second per GiB), so it is not the bottleneck and the client being
measured does not share its CPU or GIL with it.

Two destinations, because on a small VM the disk, not the network, decides a durable write:

* **tmpfs** (``/dev/shm``): the transfer itself. shotrun hashes and fsyncs (free on tmpfs),
  curl only writes. This is the target row: the same bytes, the same server, the same
  destination; what shotrun adds is its SHA-256 and its Python.
* **disk** (the temporary directory): shotrun's figure includes its fsync; curl is given
  once without (what ``curl -o`` does) and once with an ``fsync`` of its file after it
  exits (the same durability). The ratio against the latter is the fair one on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _emu
from benchmarks.table import format_table, row
from runner.providers.gateway.client import GatewayClient

ROUNDS = 3
MIB = 1024 * 1024
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


def _cpu(who: int) -> float:
    """User + system CPU seconds so far of this process (all threads) or its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def _shotrun_download(url: str, part: Path) -> tuple[float, float, str]:
    """Wall seconds and CPU seconds of one download (session set-up excluded), and its hash."""
    async with GatewayClient(url.rsplit("/", 1)[0], None, _emu.KEY) as client:
        cpu = _cpu(resource.RUSAGE_SELF)
        start = time.perf_counter()
        saved = await client.download(url, part)
        return time.perf_counter() - start, _cpu(resource.RUSAGE_SELF) - cpu, saved.sha256


def _curl(curl: str, url: str, dest: Path) -> tuple[float, float, float]:
    """Seconds for ``curl -o dest``, its CPU seconds, and seconds for an fsync of ``dest``.

    The server is a child too, but it is reaped only at the end, so the children's CPU
    counted around ``curl`` is curl's alone.
    """
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([curl, "-s", "-f", "-o", str(dest), url], check=True)
    done = time.perf_counter()
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return done - start, cpu, time.perf_counter() - done


def _hash_cpu() -> float:
    """CPU seconds per byte of SHA-256 alone here: the part of shotrun's cost curl has not."""
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    start = time.thread_time()
    for _ in range(256):
        digest.update(block)
    return (time.thread_time() - start) / (256 * MIB)


def _tmpfs() -> str | None:
    """A RAM-backed directory for the transfer-only figures, if this system has one."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@dataclass
class _Rounds:
    """Bytes/s of each side per round, and CPU seconds per byte of shotrun and curl."""

    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)
    synced: list[float] = field(default_factory=list)  # curl, then an fsync of its file
    ours_cpu: list[float] = field(default_factory=list)
    theirs_cpu: list[float] = field(default_factory=list)


def _rounds(url: str, size: int, expected: str, where: Path, curl: str | None) -> _Rounds:
    """Alternated rounds (who goes first alternates too) of shotrun and curl into ``where``."""
    out = _Rounds()

    def shotrun(n: int) -> None:
        part = where / f"ours-{n}.part"
        seconds, cpu, sha = asyncio.run(_shotrun_download(url, part))
        part.unlink()
        if sha != expected:
            raise RuntimeError("shotrun's SHA-256 of the download is wrong")
        out.ours.append(size / seconds)
        out.ours_cpu.append(cpu / size)

    def peer(n: int, curl: str) -> None:
        dest = where / f"curl-{n}.bin"
        transfer, cpu, fsync = _curl(curl, url, dest)
        dest.unlink()
        out.theirs.append(size / transfer)
        out.synced.append(size / (transfer + fsync))
        out.theirs_cpu.append(cpu / size)

    for n in range(ROUNDS):
        if curl and n % 2:
            peer(n, curl)
        shotrun(n)
        if curl and not n % 2:
            peer(n, curl)
    return out


def _rates(rates: list[float]) -> str:
    return "rounds " + ", ".join(f"{r / MIB:.0f}" for r in rates)


def _paired(ours: list[float], theirs: list[float]) -> tuple[float, str]:
    """The median of each round's ratio, and the rounds' ratios.

    The two sides of a round run back to back, so a round's ratio sees one moment's load on
    a shared machine; the median of those is steadier than a ratio of two medians.
    """
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ratios), "rounds " + ", ".join(f"{r:.2f}" for r in ratios)


def _per_gib(per_byte: list[float]) -> float:
    return round(statistics.median(per_byte) * 1024 * MIB, 2)


def _median(rates: list[float]) -> float:
    return statistics.median(rates) / MIB


def run(quick: bool) -> list[dict[str, Any]]:
    """MiB/s of shotrun and of curl (medians of alternated rounds) and the paired ratios."""
    _emu.quiet_logs()
    size = (128 if quick else 1024) * MIB
    curl = shutil.which("curl")
    label = f"download {size // MIB} MiB over loopback"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, \
            tempfile.TemporaryDirectory(dir=_tmpfs()) as ram:
        root = Path(tmp)
        (root / "srv").mkdir()
        expected = _make_file(root / "srv" / "result.mp4", size)
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(root / "srv"), str(port)])
        try:
            _wait_listening(port, server)
            url = f"http://127.0.0.1:{port}/result.mp4"
            in_ram = _rounds(url, size, expected, Path(ram), curl)
            on_disk = _rounds(url, size, expected, root, curl)
        finally:
            server.terminate()
            server.wait()
    where = "tmpfs" if _tmpfs() else "temp dir (no tmpfs here)"
    ours, theirs = in_ram.ours, in_ram.theirs
    rows.append(row(f"{label} to {where}: shotrun, SHA-256 (MiB/s)", round(_median(ours)),
                    "informative", _rates(ours)))
    if theirs:
        rows.append(row(f"{label} to {where}: curl -o (MiB/s)", round(_median(theirs)), "peer",
                        _rates(theirs)))
        ratio, shown = _paired(ours, theirs)
        rows.append(row(f"{label} to {where}: shotrun / curl", round(ratio, 2),
                        f">= {TARGET:g}", f"same bytes, server, place; curl: no hash; {shown}",
                        ratio >= TARGET))
    else:
        rows.append(row(f"{label}: shotrun / curl", "n/a", f">= {TARGET:g}", "curl not found",
                        None))
    rows.append(row(f"{label} to {where}: CPU s per GiB, shotrun", _per_gib(in_ram.ours_cpu),
                    "informative", "all threads: receive, SHA-256, write"))
    if in_ram.theirs_cpu:
        rows.append(row(f"{label} to {where}: CPU s per GiB, curl", _per_gib(in_ram.theirs_cpu),
                        "peer", "receive, write"))
    rows.append(row("SHA-256 alone: CPU s per GiB", _per_gib([_hash_cpu()]), "informative",
                    "the floor of what shotrun adds"))
    ours, theirs, synced = on_disk.ours, on_disk.theirs, on_disk.synced
    rows.append(row(f"{label} to disk: shotrun, SHA-256 + fsync (MiB/s)", round(_median(ours)),
                    "informative", _rates(ours)))
    if theirs:
        rows.append(row(f"{label} to disk: curl -o, no fsync (MiB/s)", round(_median(theirs)),
                        "peer", _rates(theirs)))
        rows.append(row(f"{label} to disk: curl -o + fsync (MiB/s)", round(_median(synced)),
                        "peer", _rates(synced)))
        rows.append(row(f"{label} to disk: shotrun / (curl -o + fsync)",
                        round(_paired(ours, synced)[0], 2), "informative",
                        f"both durable on disk; {_paired(ours, synced)[1]}"))
        rows.append(row(f"{label} to disk: shotrun / curl -o", round(
            _paired(ours, theirs)[0], 2), "informative",
            f"curl: no hash, no fsync; {_paired(ours, theirs)[1]}"))
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
