"""A take becomes exactly the JSON body the gateway documents; and its fingerprint and cost.

The same builder serves three purposes, so that they can never disagree:
- the real request (media resolved to uploaded URLs),
- the fingerprint (local files replaced by their content hash, frames by their source),
- the ``plan`` preview.

Wire field names can be renamed by ``api.wire`` without a code change (docs/gateway-api.md): a key
is a logical name (the manifest's, such as ``start_frame``, or the default wire name, such as
``start_image_url``), a value is the name to send, or ``null`` to leave the field out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from runner.core.model import (
    FrameRef,
    ImageElement,
    LocalFile,
    Media,
    Take,
    TakeRequest,
    VideoElement,
)
from runner.wire.specs import GATEWAY

# Manifest-side names that differ from the documented wire names.
LOGICAL_TO_WIRE: Mapping[str, str] = {
    "start_frame": "start_image_url",
    "end_frame": "end_image_url",
    "images": "image_urls",
    "frontal": "frontal_image_url",
    "references": "reference_image_urls",
    "video": "video_url",
}
TOP_LEVEL_FIELDS = (
    "model",
    "prompt",
    "multi_prompt",
    "shot_type",
    "resolution",
    "generate_audio",
    "start_image_url",
    "end_image_url",
    "image_urls",
    "elements",
    "aspect_ratio",
    "duration",
    "callback_url",
)
ELEMENT_FIELDS = ("frontal_image_url", "reference_image_urls", "video_url")
RENAMEABLE = frozenset(TOP_LEVEL_FIELDS) | frozenset(ELEMENT_FIELDS) | frozenset(LOGICAL_TO_WIRE)

Resolver = Callable[[Media], str]


def normalise_renames(wire: Mapping[str, str | None]) -> dict[str, str | None]:
    """Map every rename key to its documented wire name; unknown keys raise ``KeyError``."""
    renames: dict[str, str | None] = {}
    for key, value in wire.items():
        if key not in RENAMEABLE:
            raise KeyError(key)
        renames[LOGICAL_TO_WIRE.get(key, key)] = value
    return renames


def _rename(body: dict[str, Any], renames: Mapping[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = renames.get(key, key)
        if name is None:
            continue
        out[name] = value
    return out


def build_payload(
    request: TakeRequest,
    resolve: Resolver,
    wire: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The JSON body of the creation request for ``request``.

    ``resolve`` turns each media reference into the string to send (a URL for a real request).
    Optional fields the take does not use are omitted, ``shot_type`` is sent only with
    ``multi_prompt``, ``extra`` is merged last (it may override), then renames apply.
    """
    renames = normalise_renames(wire or {})
    body: dict[str, Any] = {"model": request.model}
    if request.multi_prompt is not None:
        body["multi_prompt"] = [
            {"prompt": segment.prompt, "duration": segment.duration}
            for segment in request.multi_prompt
        ]
        body["shot_type"] = "customize"
    else:
        body["prompt"] = request.prompt
    body["resolution"] = request.resolution
    body["aspect_ratio"] = request.aspect_ratio
    body["duration"] = request.duration
    body["generate_audio"] = request.generate_audio
    if request.start_frame is not None:
        body["start_image_url"] = resolve(request.start_frame)
    if request.end_frame is not None:
        body["end_image_url"] = resolve(request.end_frame)
    if request.images:
        body["image_urls"] = [resolve(image) for image in request.images]
    if request.elements:
        elements: list[dict[str, Any]] = []
        for element in request.elements:
            if isinstance(element, VideoElement):
                item: dict[str, Any] = {"video_url": element.video}
            else:
                assert isinstance(element, ImageElement)
                item = {
                    "frontal_image_url": resolve(element.frontal),
                    "reference_image_urls": [resolve(ref) for ref in element.references],
                }
            elements.append(_rename(item, renames))
        body["elements"] = elements
    body.update(request.extra)
    return _rename(body, renames)


def fingerprint_resolver(media: Media) -> str:
    """Stand-in for a media reference in the fingerprint: content, not place."""
    if isinstance(media, LocalFile):
        return f"sha256:{media.sha256}"
    if isinstance(media, FrameRef):
        return f"frame:{media.shot_id}:{media.frame}"
    return media


def preview_resolver(media: Media) -> str:
    """Stand-in for a media reference in ``plan`` output: readable, says what will happen."""
    if isinstance(media, LocalFile):
        return f"<upload {media.path}>"
    if isinstance(media, FrameRef):
        return f"<frame {media.frame} of {media.shot_id}>"
    return media


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


DEFAULT_PROVIDER = GATEWAY  # the provider whose fingerprints carry no provider field
PROVIDER_FIELD = "provider"  # the fingerprint key naming any other provider


def with_provider(payload: dict[str, Any], provider: str) -> dict[str, Any]:
    """The fingerprint payload of a take rendered by ``provider``.

    The gateway's payload is left exactly as it always was (no take rendered before
    providers existed renders again); another provider adds its name, so moving a manifest
    to another provider renders again, and :func:`runner.state.decide.change_reason` can say
    ``provider changed`` from the one differing key.
    """
    if provider != DEFAULT_PROVIDER:
        payload[PROVIDER_FIELD] = provider
    return payload


def fingerprint_payload(request: TakeRequest, wire: Mapping[str, str | None] | None = None,
                        provider: str = DEFAULT_PROVIDER) -> dict[str, Any]:
    """What a take's fingerprint is the hash of (and what the store keeps to explain it)."""
    return with_provider(build_payload(request, fingerprint_resolver, wire), provider)


def fingerprint(
    request: TakeRequest,
    wire: Mapping[str, str | None] | None = None,
    frame_hashes: Mapping[FrameRef, str] | None = None,
    provider: str = DEFAULT_PROVIDER,
) -> str:
    """SHA-256 (hex) of the canonical wire payload with local files by content hash.

    ``frame_hashes`` gives, when known, the SHA-256 of the source output a frame comes from,
    so that re-rendering a source changes its dependents' fingerprints; ``provider`` is
    part of it unless it is the gateway (:func:`with_provider`).
    """
    hashes = frame_hashes or {}

    def resolve(media: Media) -> str:
        if isinstance(media, FrameRef) and media in hashes:
            return f"frame:{media.shot_id}:{media.frame}:{hashes[media]}"
        return fingerprint_resolver(media)

    payload = with_provider(build_payload(request, resolve, wire), provider)
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def billed_seconds(request: TakeRequest) -> int:
    """Seconds of video billed: the duration rounded up to whole seconds."""
    return math.ceil(request.duration)


def estimate_credits(request: TakeRequest, rates: Mapping[str, float]) -> float | None:
    """Estimated credits for one take from per-second ``rates``; None when no rate is known.

    ``rates`` is keyed by resolution; an optional ``audio`` key adds a per-second surcharge
    for ``generate_audio`` (4k is its own tier and not affected by audio, docs/gateway-api.md).
    """
    rate = rates.get(request.resolution)
    if rate is None:
        return None
    per_second = rate
    if request.generate_audio and request.resolution != "4k":
        per_second += rates.get("audio", 0.0)
    return round(per_second * billed_seconds(request), 4)


class FingerprintPayloads(Mapping[str, dict[str, Any]]):
    """Per take key, ``fingerprint_payload(take.request, wire, provider)``, built when
    first asked for.

    ``StateStore.sync`` reads the payload of a take only when it is new or changed, so a run
    resumed with nothing to do builds none of them (20,000 dicts, a tenth of a second).
    """

    def __init__(self, takes: Iterable[Take], wire: Mapping[str, str | None] | None = None,
                 provider: str = DEFAULT_PROVIDER) -> None:
        self._takes = {take.key: take for take in takes}
        self._wire = wire
        self._provider = provider
        self._built: dict[str, dict[str, Any]] = {}

    def __getitem__(self, key: str) -> dict[str, Any]:
        payload = self._built.get(key)
        if payload is None:
            request = self._takes[key].request  # KeyError for an unknown key, as a dict
            payload = self._built[key] = fingerprint_payload(request, self._wire,
                                                             self._provider)
        return payload

    def __iter__(self) -> Iterator[str]:
        return iter(self._takes)

    def __len__(self) -> int:
        return len(self._takes)
