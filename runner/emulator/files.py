"""The emulator's file service: uploads (three documented ways), their URLs, and their expiry.

Uploaded images are kept in memory (at most 10 MB each, judged image or refused by their
content, not by what the client claims) and served back at their ``file_url`` until they
expire, 72 hours by default, like the gateway's temporary files. The renderer reads them
straight from here when a request points at the emulator's own URLs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from runner.core.model import MAX_IMAGE_BYTES
from runner.emulator.responses import ApiError, bad_request, new_token
from runner.media.imagetypes import sniff_mime

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
DEFAULT_UPLOAD_PATH = "images"



def decode_base64(value: Any) -> bytes:
    """The bytes of a ``base64_data`` field: a data URL or bare base64."""
    if not isinstance(value, str) or not value:
        raise bad_request("base64_data must be a non-empty string", "base64_data")
    payload = value
    if value.startswith("data:"):
        header, _, payload = value.partition(",")
        if not header.endswith(";base64"):
            raise bad_request("base64_data must be a base64 data URL", "base64_data")
    if len(payload) > (MAX_IMAGE_BYTES * 4) // 3 + 8:
        raise ApiError(413, f"files are limited to {MAX_IMAGE_BYTES // (1024 * 1024)} MB",
                       param="base64_data")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("base64_data is not valid base64", "base64_data") from None


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _clean_name(name: Any, param: str) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise bad_request(f"{param} must be a short non-empty string", param)
    return name.replace("/", "_").replace("\\", "_").strip()


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One uploaded file and when (event-loop clock) it stops being served."""

    file_id: str
    data: bytes
    mime: str
    file_name: str
    original_name: str
    upload_path: str
    uploaded: float  # epoch seconds
    expires: float  # loop clock


class FileStore:
    """Uploaded files by id; URLs are built on the emulator's base URL."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self.base_url = ""

    def add(
        self,
        data: bytes,
        *,
        now: float,
        ttl: float,
        file_name: Any = None,
        original_name: str | None = None,
        upload_path: Any = None,
    ) -> StoredFile:
        """Store ``data`` after checking size and type; raise the documented error otherwise."""
        if len(data) > MAX_IMAGE_BYTES:
            raise ApiError(413, f"files are limited to {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
        if not data:
            raise bad_request("the file is empty", "file")
        mime = sniff_mime(data)
        if mime is None:
            raise bad_request("only image/jpeg, image/png, image/gif and image/webp files are "
                              "accepted", "file")
        self._drop_expired(now)
        file_id = f"file_{new_token(16)}"
        name = _clean_name(file_name, "file_name") or f"{file_id}.{_EXTENSIONS[mime]}"
        path = _clean_name(upload_path, "upload_path") or DEFAULT_UPLOAD_PATH
        stored = StoredFile(
            file_id=file_id, data=data, mime=mime, file_name=name,
            original_name=original_name or name, upload_path=path, uploaded=time.time(),
            expires=now + ttl,
        )
        self._files[file_id] = stored
        return stored

    def _drop_expired(self, now: float) -> None:
        # Expired files are kept a while so that a late GET is told "expired", then dropped.
        for file_id in [f for f, s in self._files.items() if s.expires + 3600 < now]:
            del self._files[file_id]

    def get(self, file_id: str) -> StoredFile | None:
        """The stored file, expired or not (the caller decides what expiry means)."""
        return self._files.get(file_id)

    def file_url(self, stored: StoredFile) -> str:
        """Where the file is served (its name kept, for readability)."""
        return f"{self.base_url}/files/{stored.file_id}/{quote(stored.file_name)}"

    def download_url(self, stored: StoredFile) -> str:
        """The file service's download link for the file."""
        return f"{self.base_url}/api/v1/files/download/{stored.file_id}"

    def own_file_id(self, url: str) -> str | None:
        """The file id when ``url`` points at one of this store's files, else None."""
        if not self.base_url or not url.startswith(self.base_url + "/"):
            return None
        parts = urlsplit(url).path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "files":
            return parts[1]
        if len(parts) == 5 and parts[:4] == ["api", "v1", "files", "download"]:
            return parts[4]
        return None

    def response_body(self, stored: StoredFile, ttl: float) -> dict[str, Any]:
        """The documented upload answer for ``stored``."""
        return {
            "success": True,
            "code": 200,
            "msg": "File uploaded successfully",
            "data": {
                "file_id": stored.file_id,
                "file_name": stored.file_name,
                "original_name": stored.original_name,
                "file_size": len(stored.data),
                "mime_type": stored.mime,
                "upload_path": stored.upload_path,
                "file_url": self.file_url(stored),
                "download_url": self.download_url(stored),
                "upload_time": _iso(stored.uploaded),
                "expires_at": _iso(stored.uploaded + ttl),
            },
        }
