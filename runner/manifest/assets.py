"""Local reference images: checked before anything is sent, identified by content.

The gateway's file service takes JPEG, PNG, GIF and WebP up to 10 MB (docs/gateway-api.md). A file
is judged by its first bytes, not its name: a ``.png`` that is really a text file must fail here,
not after a paid upload. Its SHA-256 is what the fingerprint uses, so moving a file changes
nothing and editing it re-renders the shots that use it.

Each distinct file is read once per load however many shots use it (10,000 shots sharing one
hero image hash it once).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from runner.core.model import MAX_IMAGE_BYTES, LocalFile
from runner.media.imagetypes import sniff_mime

MIN_SIDE = 300
MAX_ASPECT = 2.5
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_log = structlog.get_logger()



def is_url(text: str) -> bool:
    """True for an http(s) URL (the only URLs a manifest may hold)."""
    return text.startswith(("http://", "https://"))


def url_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable URL, or None when it is fine or not a URL at all."""
    if is_url(text):
        rest = text.split("://", 1)[1]
        if not rest or rest[0] in "/?#" or any(c.isspace() for c in text):
            return f"{text[:80]!r} is not a valid URL; write http(s)://host/path"
        return None
    match = _SCHEME.match(text)
    if match is None or len(match.group(1)) == 1:  # C:\... is a Windows path, not a scheme
        return None
    scheme = match.group(1).lower()
    if scheme == "file":
        local = text[len("file://"):] if text.startswith("file://") else text[5:]
        return (f"file:// URLs are not allowed; write the local path instead "
                f"({local!r}, relative to the manifest or absolute)")
    if "://" in text or scheme in ("data", "ftp", "s3", "gs"):
        return f"{scheme}: URLs are not allowed; URLs must be http or https"
    return None


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of checking one local file: the file, or what is wrong with it."""

    file: LocalFile | None
    problem: str | None = None
    warning: str | None = None


def _missing(written: str, path: Path, base_dir: Path) -> str:
    """What to do about a file that is not there: the path looked for, and that it is absent."""
    if Path(written).expanduser().is_absolute():
        return (f"no such file {written!r}: it does not exist; put the image there or "
                "correct the path")
    looked = os.path.relpath(path, base_dir)
    return (f"no such file {written!r}: looked for {looked} relative to the manifest's folder "
            "and it does not exist; put the image there or correct the path")


class LocalFiles:
    """Checks local files relative to the manifest's directory, once each."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._cache: dict[str, Checked] = {}

    def check(self, written: str) -> Checked:
        """Check the file written as ``written`` in the manifest (cached)."""
        found = self._cache.get(written)
        if found is None:
            found = self._check(written)
            self._cache[written] = found
        return found

    def _check(self, written: str) -> Checked:
        path = Path(written).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        path = Path(os.path.normpath(path))  # fold "..", keep symlinks as written
        shown = f"{written!r}" + ("" if Path(written).is_absolute() else
                                   " (relative to the manifest's folder)")
        try:
            if not path.exists():
                return Checked(None, _missing(written, path, self.base_dir))
            if not path.is_file():
                return Checked(None, f"{shown} is not a file; give an image file")
            size = path.stat().st_size
            if size == 0:
                return Checked(None, f"{shown} is empty (0 bytes); give a JPEG, PNG, GIF or "
                                     "WebP image")
            if size > MAX_IMAGE_BYTES:
                return Checked(None, f"{shown} is {size / 1048576:.1f} MB, more than the 10 MB "
                                     "the gateway accepts; make it smaller")
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                head = handle.read(65536)
                digest.update(head)
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            return Checked(None, f"{shown} cannot be read ({exc.strerror or exc}); check its "
                                 "permissions")
        mime = sniff_mime(head)
        if mime is None:
            return Checked(None, f"{shown} is not a JPEG, PNG, GIF or WebP image (judged by its "
                                 "content, not its name); convert it to one of these")
        local = LocalFile(path=Path(os.path.abspath(path)), sha256=digest.hexdigest(),
                          size=size, mime=mime)
        _log.debug("asset_checked", path=str(local.path), size=size, mime=mime)
        return Checked(local, warning=_shape_warning(path))


def _shape_warning(path: Path) -> str | None:
    """A warning when the image's size is outside what the gateway documents (header only)."""
    from PIL import Image, UnidentifiedImageError  # only manifests with local images need it

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return "cannot read the image's size; the gateway may refuse it"
    if min(width, height) < MIN_SIDE:
        return (f"is {width}x{height} px; the gateway documents at least {MIN_SIDE} px a side "
                "and may refuse it")
    if max(width, height) > MAX_ASPECT * min(width, height):
        return (f"is {width}x{height} px; the gateway documents an aspect ratio between 1:2.5 "
                "and 2.5:1 and may refuse it")
    return None
