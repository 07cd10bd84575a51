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
from dataclasses import dataclass
from pathlib import Path

import structlog
from PIL import Image, ImageOps, UnidentifiedImageError

from runner.core.errors import VerifyError
from runner.core.fsutil import atomic_write_bytes
from runner.media.verify import extract_frame, probe

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
    """Write ``data`` to ``path`` atomically, creating the folder (a page anyone may read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def probe_video(path: Path) -> VideoFacts:
    """Duration (seconds) and size of an output; ``None``s when it does not decode."""
    try:
        info = probe(path)
    except (VerifyError, OSError, ValueError) as exc:
        log.warning("report_probe_failed", path=str(path), error=str(exc))
        return VideoFacts(None, None, None)
    return VideoFacts(info.duration, info.width, info.height)


def make_poster(
    video: Path, posters_dir: Path, name: str, duration: float | None = None
) -> Path | None:
    """A JPEG poster of ``video`` as ``posters_dir/<name>.jpg``, made once; None if undecodable.

    ``name`` should identify the video's content (its SHA-256), so that a poster already on disk
    is the right one and is reused. The still is taken a third of the way in (past fade-ins).
    """
    target = posters_dir / f"{name}.jpg"
    if target.is_file() and target.stat().st_size > 0:
        return target
    try:
        image = extract_frame(video, duration / 3 if duration else "first")
    except (VerifyError, OSError, ValueError) as exc:
        log.warning("report_poster_failed", path=str(video), error=str(exc))
        return None
    if image.width > POSTER_WIDTH:
        height = max(1, round(image.height * POSTER_WIDTH / image.width))
        image = image.resize((POSTER_WIDTH, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80, optimize=True)
    # Posters live under .shotrun/, which holds only the user's private files.
    posters_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_bytes(target, buffer.getvalue(), mode=0o600)
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


def file_data_uri(path: Path, kind: str = "image/jpeg") -> str | None:
    """A file (a poster) as a ``data:`` URI, for a page that must not refer to ``.shotrun/``;
    None if it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("report_poster_unreadable", path=str(path), error=str(exc))
        return None
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"
