"""The write-and-hash pipeline under downloads: order, resume offsets, failures, many buffers."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
from pathlib import Path

import pytest

from runner.providers.spool import Spool


def _pieces(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(1, 300_000)) for _ in range(count)]


async def test_batches_reach_the_file_and_the_digest_in_order(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    pieces = _pieces(1, 60)
    digest = hashlib.sha256()
    async with Spool.open(part, 0, digest, depth=2, writeback_step=1 << 20) as spool:
        for n in range(0, len(pieces), 3):
            await spool.submit(pieces[n : n + 3])
        await spool.finish()
    whole = b"".join(pieces)
    assert part.read_bytes() == whole
    assert digest.hexdigest() == hashlib.sha256(whole).hexdigest()


async def test_opening_at_an_offset_keeps_the_prefix_and_cuts_the_rest(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(b"kept-" + b"stale tail that must go")
    digest = hashlib.sha256(b"kept-")
    async with Spool.open(part, 5, digest) as spool:
        await spool.submit([b"new ", b"bytes"])
        await spool.finish()
    assert part.read_bytes() == b"kept-new bytes"
    assert digest.hexdigest() == hashlib.sha256(b"kept-new bytes").hexdigest()


async def test_opening_at_zero_truncates(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(b"an earlier attempt")
    async with Spool.open(part, 0, hashlib.sha256()) as spool:
        await spool.submit([b"fresh"])
        await spool.finish()
    assert part.read_bytes() == b"fresh"


async def test_more_buffers_than_one_writev_takes(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    pieces = [bytes([n % 256]) * 3 for n in range(5000)]
    async with Spool.open(part, 0, hashlib.sha256()) as spool:
        await spool.submit([*pieces, b""])
        await spool.finish()
    assert part.read_bytes() == b"".join(pieces)


async def test_after_a_failed_write_nothing_more_is_written(tmp_path: Path) -> None:
    """RLIMIT_FSIZE fails writes past 1 MiB as a full disk would; the file stays a prefix."""
    resource = pytest.importorskip("resource")
    part = tmp_path / "a.part"
    pieces = _pieces(2, 20)  # about 3 MiB
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, hard))
    try:
        with pytest.raises(OSError):
            async with Spool.open(part, 0, hashlib.sha256(), depth=1) as spool:
                for piece in pieces:
                    await spool.submit([piece])
                await spool.finish()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    kept = part.read_bytes()
    assert 0 < len(kept) <= 1024 * 1024
    assert kept == b"".join(pieces)[: len(kept)]


async def test_leaving_early_still_writes_what_was_submitted(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    pieces = _pieces(3, 12)
    with pytest.raises(RuntimeError, match="stop"):
        async with Spool.open(part, 0, hashlib.sha256(), depth=8) as spool:
            await spool.submit(pieces)
            raise RuntimeError("stop")
    assert part.read_bytes() == b"".join(pieces)


async def test_a_body_in_one_batch_is_written_by_one_job_without_threads_of_its_own(
    tmp_path: Path,
) -> None:
    part = tmp_path / "a.part"
    pieces = _pieces(5, 4)
    digest = hashlib.sha256()
    async with Spool.open(part, 0, digest) as spool:
        await spool.finish(pieces)
        names = [thread.name for thread in threading.enumerate()]
    whole = b"".join(pieces)
    assert part.read_bytes() == whole
    assert digest.hexdigest() == hashlib.sha256(whole).hexdigest()
    assert not [name for name in names if name.startswith(("shotrun-write", "shotrun-hash"))]


async def test_a_spool_left_before_anything_was_written_closes_its_file(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    before = len(os.listdir("/proc/self/fd"))
    async with Spool.open(part, 0, hashlib.sha256()):
        assert len(os.listdir("/proc/self/fd")) == before + 1
    assert len(os.listdir("/proc/self/fd")) == before
    assert part.read_bytes() == b""
