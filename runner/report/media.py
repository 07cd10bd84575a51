"""Pictures for the contact sheet: poster frames of outputs and thumbnails of inputs.

Posters are small JPEG files under ``<output_dir>/.shotrun/posters/``, named by the output's
content hash, so a report over a few hundred takes re-uses what an earlier report made and the
page itself stays light (the browser loads a poster only when it draws it). Input thumbnails are
tiny JPEGs inlined as ``data:`` URIs: the same reference image is used by many shots, so the
renderer inlines each distinct one once.

Nothing here raises for a bad file: a video that does not decode has no poster, an image that
does not open has no thumbnail, and the report says so instead of failing.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import structlog
from PIL import Image, ImageOps, UnidentifiedImageError

log = structlog.get_logger()

POSTER_WIDTH = 480
THUMB_SIDE = 128


@dataclass(frozen=True, slots=True)
class VideoFacts:
    """What decoding an output tells the report: its length and picture size."""

    duration: float | None
    width: int | None
    height: int | None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file, fsync and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # a page to open in a browser, not a secret
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def probe_video(path: Path) -> VideoFacts:
    """Duration (seconds) and size of the first video stream; ``None``s when it cannot be read."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            duration: float | None = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            return VideoFacts(duration, int(stream.width), int(stream.height))
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as exc:
        log.warning("report_probe_failed", path=str(path), error=str(exc))
        return VideoFacts(None, None, None)


def _first_frame(path: Path) -> Image.Image | None:
    """The first decodable picture of ``path``, as a Pillow image."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            pixels = frame.to_ndarray(format="rgb24")
            return Image.fromarray(pixels)
    return None


def make_poster(video: Path, posters_dir: Path, name: str) -> Path | None:
    """A JPEG poster of ``video`` as ``posters_dir/<name>.jpg``, made once; None if undecodable.

    ``name`` should identify the video's content (its SHA-256), so that a poster already on disk
    is the right one and is reused.
    """
    target = posters_dir / f"{name}.jpg"
    if target.is_file() and target.stat().st_size > 0:
        return target
    try:
        image = _first_frame(video)
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as exc:
        log.warning("report_poster_failed", path=str(video), error=str(exc))
        return None
    if image is None:
        log.warning("report_poster_failed", path=str(video), error="no video frame")
        return None
    image = image.convert("RGB")
    if image.width > POSTER_WIDTH:
        height = max(1, round(image.height * POSTER_WIDTH / image.width))
        image = image.resize((POSTER_WIDTH, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80, optimize=True)
    write_atomic(target, buffer.getvalue())
    return target


def thumbnail_data_uri(path: Path, side: int = THUMB_SIDE) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail of a local image; None if it cannot be read."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened) or opened
            image = image.convert("RGB")
            image.thumbnail((side, side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=75, optimize=True)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        log.warning("report_thumbnail_failed", path=str(path), error=str(exc))
        return None
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/jpeg;base64,{encoded}"
