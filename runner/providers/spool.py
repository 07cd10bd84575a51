"""Writing and hashing a received stream on two threads of its own, in order, bounded.

A download's event loop should do nothing but receive: SHA-256 costs about a second of CPU
per GiB and writing into the page cache most of another, so done inline (or one chunk at a
time, waiting for each) they halve the transfer rate. A :class:`Spool` takes batches of
received buffers and hands each to a *writer* thread (``os.writev``, then, every
:data:`WRITEBACK_STEP`, a nudge to start writeback) and to a *hasher* thread
(``hashlib`` releases the GIL for buffers over 2 KiB). Each thread is a one-worker
executor, so batches reach the file and the digest in the order they were submitted, and
both threads work while the loop receives the next batch.

The pipeline is bounded (``depth`` batches in flight; :meth:`Spool.submit` waits for the
oldest beyond that), so a disk slower than the network holds back the socket through
aiohttp's flow control instead of filling memory. After a write fails, every later write
is skipped: the file then holds an exact prefix of the stream, which a resumed download
hashes and continues from. The writer thread owns the descriptor to the end: closing is its
last job, so the descriptor is never closed under a write still running, even when the
download is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WRITEBACK_STEP = 16 * 1024 * 1024  # start flushing to disk every this many bytes
_IOV_MAX = 512  # buffers per writev call, well under every platform's IOV_MAX


class _Writer:
    """The writer thread's state: the descriptor, how much is written, the first failure."""

    def __init__(self, fd: int, offset: int, writeback_step: int) -> None:
        self.fd = fd
        self.written = offset
        self.kicked = offset  # bytes before this offset were handed to writeback
        self.step = writeback_step
        self.failed: OSError | None = None

    def write(self, batch: Sequence[bytes]) -> None:
        if self.failed is not None:
            raise self.failed  # the file must stay an exact prefix: write nothing after a gap
        try:
            _write_all(self.fd, batch)
        except OSError as exc:
            self.failed = exc
            raise
        self.written += sum(len(b) for b in batch)
        if self.written - self.kicked >= self.step:
            _start_writeback(self.fd, self.kicked, self.written - self.kicked)
            self.kicked = self.written

    def fsync(self) -> None:
        if self.failed is not None:
            raise self.failed
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _write_all(fd: int, batch: Sequence[bytes]) -> None:
    """``os.writev`` the whole batch, carrying on after short writes."""
    views = [memoryview(b) for b in batch if b]
    while views:
        group = views[:_IOV_MAX]
        done = os.writev(fd, group)
        while done and views:
            head = views[0]
            if done >= len(head):
                done -= len(head)
                views.pop(0)
            else:
                views[0] = head[done:]
                done = 0


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk now, without waiting for it.

    On Linux, ``POSIX_FADV_DONTNEED`` starts asynchronous writeback of the range's dirty
    pages; the disk then works while the network does, and the final fsync only has the
    tail left to flush instead of the whole file. Elsewhere this does nothing.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _hash(digest: hashlib._Hash, batch: Sequence[bytes]) -> None:
    for block in batch:
        digest.update(block)


class Spool:
    """An ordered, bounded write-and-hash pipeline into one open file (see the module doc).

    Use as ``async with Spool.open(path, offset, digest) as spool``: ``submit`` batches,
    ``finish`` (fsync) on success; leaving the block waits for whatever is still in flight
    (so everything received is on disk for a retry) and closes the file.
    """

    def __init__(self, fd: int, offset: int, digest: hashlib._Hash, *, depth: int,
                 writeback_step: int) -> None:
        self._digest = digest
        self._writer_state = _Writer(fd, offset, writeback_step)
        # Started with the first batch that is not the last: a body that arrives in one
        # batch (most results are a few MB) is written, hashed, fsynced and closed by one
        # job on the default pool instead of starting two threads for it.
        self._writer: ThreadPoolExecutor | None = None
        self._hasher: ThreadPoolExecutor | None = None
        self._handed_over = False  # the one-job path owns (and closes) the descriptor
        self._depth = depth
        self._inflight: deque[asyncio.Future[None]] = deque()

    @classmethod
    def open(cls, path: Path, offset: int, digest: hashlib._Hash, *, depth: int = 4,
             writeback_step: int | None = None) -> Spool:
        """Open ``path`` for writing from ``offset`` (cutting anything after it)."""
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags | (0 if offset else os.O_TRUNC), 0o666)
        try:
            if offset:
                os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        step = WRITEBACK_STEP if writeback_step is None else writeback_step
        return cls(fd, offset, digest, depth=depth, writeback_step=step)

    async def __aenter__(self) -> Spool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def submit(self, batch: Sequence[bytes]) -> None:
        """Queue ``batch`` for writing and hashing; wait while too many are in flight."""
        if not batch:
            return
        writer, hasher = self._pools()
        loop = asyncio.get_running_loop()
        self._inflight.append(loop.run_in_executor(writer, self._writer_state.write, batch))
        self._inflight.append(loop.run_in_executor(hasher, _hash, self._digest, batch))
        while len(self._inflight) > 2 * self._depth:
            await self._inflight.popleft()

    async def settle(self) -> None:
        """Wait for everything in flight; raise the first failure among them."""
        inflight, self._inflight = list(self._inflight), deque()
        if not inflight:
            return
        results = await asyncio.gather(*inflight, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _pools(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        if self._writer is None or self._hasher is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="shotrun-write")
            self._hasher = ThreadPoolExecutor(1, thread_name_prefix="shotrun-hash")
        return self._writer, self._hasher

    async def finish(self, last: Sequence[bytes] = ()) -> None:
        """``last`` and everything before it written, hashed and fsynced; then the caller
        reads the digest."""
        if self._writer is None:
            self._handed_over = True
            await asyncio.to_thread(self._all_at_once, list(last))
            return
        await self.submit(last)
        await self.settle()
        await asyncio.get_running_loop().run_in_executor(self._writer,
                                                         self._writer_state.fsync)

    def _all_at_once(self, batch: Sequence[bytes]) -> None:
        try:
            self._writer_state.write(batch)
            _hash(self._digest, batch)
            self._writer_state.fsync()
        finally:
            self._writer_state.close()

    async def close(self) -> None:
        """Wait for the work in flight (not raising: the caller is already leaving) and close.

        The close is queued behind every write, so the descriptor outlives them even if
        this coroutine is cancelled while waiting.
        """
        if self._writer is None or self._hasher is None:
            if not self._handed_over:  # no thread ever touched the descriptor
                self._writer_state.close()
            return
        closed = asyncio.get_running_loop().run_in_executor(self._writer,
                                                            self._writer_state.close)
        self._writer.shutdown(wait=False)
        self._hasher.shutdown(wait=False)
        with contextlib.suppress(Exception):
            await self.settle()
        await closed
