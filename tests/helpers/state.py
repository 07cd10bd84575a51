"""Building takes (with their fingerprint payloads) for state, outputs and status tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.core.model import LocalFile, Take, TakeRequest
from runner.wire.payload import build_payload, fingerprint, fingerprint_resolver


def make_take(
    shot_id: str = "s01",
    take: int = 1,
    *,
    prompt: str = "a lighthouse at dawn",
    duration: int = 5,
    image_sha: str | None = None,
    tags: Sequence[str] = (),
) -> Take:
    """A take whose fingerprint follows its prompt, duration and (local) image content."""
    images: tuple[LocalFile, ...] = ()
    if image_sha is not None:
        images = (LocalFile(Path("/assets/coast.png"), image_sha, 1000, "image/png"),)
    request = TakeRequest(prompt=prompt, multi_prompt=None, duration=duration, images=images)
    return Take(shot_id=shot_id, take=take, request=request, fingerprint=fingerprint(request),
                tags=tuple(tags))


def payloads(takes: Sequence[Take]) -> dict[str, dict[str, Any]]:
    """The canonical fingerprint payload of each take, by key, as the run passes to sync."""
    return {t.key: build_payload(t.request, fingerprint_resolver) for t in takes}
