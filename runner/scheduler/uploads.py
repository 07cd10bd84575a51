"""Local media become URLs: each distinct file uploaded once, frames of other shots extracted.

The file service's quota is limited and uploads expire after 72 hours (docs/gateway-api.md), so a
file is identified by the SHA-256 of its content and its URL kept in the store: a reference
image used by a hundred takes is uploaded once, across runs too, and again only when less than
``min_validity`` (an hour) of its URL is left, so that a task created now can still fetch it.
Takes that need the same file at the same moment share one upload (one future per hash).

A continuity frame (``start_frame: {from_shot: s01, frame: last}``) is cut from the source
shot's output (:func:`runner.media.verify.extract_frame`) into a PNG under
``<output_dir>/.shotrun/frames/`` (named by the source output's hash, so re-rendering the
source makes a new frame) and uploaded like any local file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from runner.core.errors import VerifyError
from runner.core.fsutil import hash_file
from runner.core.model import FrameRef, LocalFile, Media
from runner.media.verify import extract_frame
from runner.state.protocol import Store
from runner.wire.protocol import Gateway, UploadedFile

log = structlog.get_logger()

MIN_VALIDITY = 3600.0  # seconds of URL life a task needs left to be safe
UPLOAD_LIFETIME = 72 * 3600.0  # when the file service does not say


class UploadCache:
    """Resolves media to URLs for one run; the store keeps the URLs between runs.

    ``store`` keeps the URLs (:meth:`~runner.state.protocol.Store.get_upload` / ``put_upload``);
    ``frame_source`` maps a shot id to the output file its frames come from (None: not done);
    ``namespace`` names the file service (its URL), see :meth:`_key`.
    """

    def __init__(self, store: Store, gateway: Gateway, frames_dir: Path, *,
                 frame_source: Callable[[str], Path | None],
                 namespace: str = "",
                 min_validity: float = MIN_VALIDITY,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._namespace = namespace
        self._gateway = gateway
        self._frames_dir = frames_dir
        self._frame_source = frame_source
        self._min_validity = min_validity
        self._clock = clock
        self._pending: dict[str, asyncio.Future[str]] = {}
        self.uploads = 0  # uploads this run actually made (the rest came from the cache)
        # Shot id -> SHA-256 of the output its frames were cut from in this run: what a
        # dependent take records as its source (runner.state.continuity).
        self.source_hashes: dict[str, str] = {}

    async def resolve(self, media: Media) -> str:
        """The URL to send for ``media`` (uploading or extracting it when needed)."""
        if isinstance(media, str):
            return media
        if isinstance(media, FrameRef):
            media = await asyncio.to_thread(self._extract_frame, media)
        return await self._upload(media)

    def _key(self, sha256: str) -> str:
        """The store's key for a content: its hash, scoped to the file service it went to.

        A URL of one file service means nothing to another (a test gateway, the built-in
        emulator on a fresh port each run, the real gateway): switching services re-uploads.
        """
        return f"{sha256}@{self._namespace}" if self._namespace else sha256

    async def _upload(self, file: LocalFile) -> str:
        cached = self._store.get_upload(self._key(file.sha256))
        if cached is not None and (cached.expires_at is None
                                   or cached.expires_at - self._clock() >= self._min_validity):
            return str(cached.url)
        pending = self._pending.get(file.sha256)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[file.sha256] = future
        try:
            uploaded = await self._send(file)
        except BaseException as exc:
            self._pending.pop(file.sha256, None)
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it themselves
            else:
                future.cancel()
            raise
        self._pending.pop(file.sha256, None)
        future.set_result(uploaded.url)
        return uploaded.url

    async def _send(self, file: LocalFile) -> UploadedFile:
        if not file.path.is_file():
            raise FileNotFoundError(f"{file.path}: the asset is gone; restore it or edit the "
                                    "manifest")
        actual, _size = await asyncio.to_thread(hash_file, file.path)
        if actual != file.sha256:
            raise VerifyError(f"{file.path}: the file changed since the manifest was read; "
                              "run again to render the new content (a new paid creation; "
                              "nothing was sent for this one)")
        uploaded = await self._gateway.upload_file(file.path, file.mime)
        expires_at = uploaded.expires_at or (self._clock() + UPLOAD_LIFETIME)
        self._store.put_upload(self._key(file.sha256), uploaded.url, expires_at, file.size,
                               file.mime)
        self.uploads += 1
        log.info("asset_uploaded", path=str(file.path), sha256=file.sha256[:12])
        return uploaded

    def _extract_frame(self, ref: FrameRef) -> LocalFile:
        source = self._frame_source(ref.shot_id)
        if source is None or not source.is_file():
            raise VerifyError(f"shot {ref.shot_id} has no output to take a frame from")
        source_hash = hash_file(source)[0]
        self.source_hashes[ref.shot_id] = source_hash
        target = self._frames_dir / f"{source_hash[:24]}-{ref.frame}.png"
        if not target.is_file():
            image = extract_frame(source, ref.frame)
            self._frames_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._frames_dir, suffix=".png.tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    image.save(handle, format="PNG")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return LocalFile(path=target, sha256=hash_file(target)[0], size=target.stat().st_size,
                         mime="image/png")

