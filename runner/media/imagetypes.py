"""The image types the gateway's file service accepts, judged by content, not by name.

One definition serves the manifest's asset checks and the emulator's upload endpoints, so the
two can never disagree about what an image is.
"""

from __future__ import annotations

ACCEPTED_MIMES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def sniff_mime(head: bytes) -> str | None:
    """The image type of ``head`` (a file's first bytes) by its magic bytes; None otherwise."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
