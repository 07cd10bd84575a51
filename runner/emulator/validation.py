"""Checks a creation body the way the gateway documents, answering 400 with the right ``param``.

The emulator is stricter than a lenient server on purpose: unknown fields are refused, so a
client that sends a misspelt or unintended field fails in tests rather than against the real
gateway. Each rule of docs/gateway-api.md ("Create a task") is one check here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runner.core.model import (
    ASPECT_RATIOS,
    MAX_DURATION,
    MAX_PROMPT_CHARS,
    MAX_SEGMENTS,
    MIN_DURATION,
    MODEL_ID,
    RESOLUTIONS,
)
from runner.emulator.responses import TASK_ID_RE, ApiError, bad_request

FIELDS = frozenset(
    {
        "model", "prompt", "multi_prompt", "shot_type", "resolution", "generate_audio",
        "start_image_url", "end_image_url", "image_urls", "elements", "aspect_ratio",
        "duration", "callback_url",
    }
)
IMAGE_ELEMENT_FIELDS = frozenset({"frontal_image_url", "reference_image_urls"})
MAX_CALLBACK_CHARS = 2048
MAX_ITEMS_WITH_VIDEO = 4
_REF_RE = re.compile(r"@(Image|Element)(\d+)")


@dataclass(frozen=True, slots=True)
class Element:
    """A subject element: image based (frontal + references) or a video subject."""

    frontal: str | None = None
    references: tuple[str, ...] = ()
    video: str | None = None


@dataclass(frozen=True, slots=True)
class Creation:
    """A valid creation request, defaults filled in."""

    model: str
    segments: tuple[tuple[str, int], ...]  # (prompt, seconds); one for a single prompt
    multi: bool
    resolution: str
    aspect_ratio: str
    duration: int
    generate_audio: bool
    start_image_url: str | None
    end_image_url: str | None
    image_urls: tuple[str, ...]
    elements: tuple[Element, ...]
    callback_url: str | None

    def picture_urls(self) -> tuple[str, ...]:
        """Every image URL, in the order pictures are drawn from them."""
        urls = list(self.image_urls)
        for element in self.elements:
            if element.frontal:
                urls.append(element.frontal)
            urls.extend(element.references)
        return tuple(urls)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _url(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{param} must be a URL string", param)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request(f"{param} must be an http or https URL", param)
    return value


def _url_list(value: Any, param: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise bad_request(f"{param} must be a list of URLs", param)
    return tuple(_url(item, param) for item in value)


def _enum(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}", name)
    assert isinstance(value, str)
    return value


def _prompt(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{param} must be a non-empty string", param)
    if len(value) > MAX_PROMPT_CHARS:
        raise bad_request(f"{param} is longer than {MAX_PROMPT_CHARS} characters", param)
    return value


def _segments(body: Mapping[str, Any], duration: int) -> tuple[tuple[str, int], ...]:
    value = body["multi_prompt"]
    if not isinstance(value, list) or not value:
        raise bad_request("multi_prompt must be a non-empty list of {prompt, duration}",
                          "multi_prompt")
    if len(value) > MAX_SEGMENTS:
        raise bad_request(f"multi_prompt has more than {MAX_SEGMENTS} segments", "multi_prompt")
    segments: list[tuple[str, int]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"prompt", "duration"}:
            raise bad_request("each multi_prompt item must be exactly {prompt, duration}",
                              "multi_prompt")
        seconds = item["duration"]
        if not _is_int(seconds) or seconds < 1:
            raise bad_request("multi_prompt durations must be whole seconds >= 1",
                              "multi_prompt")
        segments.append((_prompt(item["prompt"], "multi_prompt"), seconds))
    if sum(s for _, s in segments) != duration:
        raise bad_request(
            f"multi_prompt durations add up to {sum(s for _, s in segments)}, "
            f"not to duration {duration}", "multi_prompt")
    return tuple(segments)


def _elements(value: Any) -> tuple[Element, ...]:
    if not isinstance(value, list):
        raise bad_request("elements must be a list", "elements")
    elements: list[Element] = []
    for item in value:
        if not isinstance(item, dict):
            raise bad_request("each element must be an object", "elements")
        if "video_url" in item:
            if set(item) != {"video_url"}:
                raise bad_request("a video subject has only video_url", "elements")
            elements.append(Element(video=_url(item["video_url"], "elements")))
            continue
        unknown = set(item) - IMAGE_ELEMENT_FIELDS
        if unknown:
            raise bad_request(f"unknown element field {sorted(unknown)[0]}", "elements")
        if "frontal_image_url" not in item:
            raise bad_request("an element needs frontal_image_url or video_url", "elements")
        elements.append(Element(
            frontal=_url(item["frontal_image_url"], "elements"),
            references=_url_list(item.get("reference_image_urls", []), "elements"),
        ))
    return tuple(elements)


def _check_callback(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_CALLBACK_CHARS:
        raise bad_request(f"callback_url must be a URL of at most {MAX_CALLBACK_CHARS} "
                          "characters", "callback_url")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise bad_request("callback_url must be an https URL", "callback_url")
    host = parts.hostname.lower()
    if host == "localhost" or host.endswith(".localhost"):
        raise bad_request("callback_url must not point at a loopback address", "callback_url")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return value
    if not address.is_global:
        raise bad_request("callback_url must not point at a private or loopback address",
                          "callback_url")
    return value


def _check_references(texts: list[str], images: int, elements: int, param: str) -> None:
    for text in texts:
        for kind, number in _REF_RE.findall(text):
            limit = images if kind == "Image" else elements
            if not 1 <= int(number) <= limit:
                have = f"{limit} {'image' if kind == 'Image' else 'element'}(s)"
                raise bad_request(f"@{kind}{number} is referenced but the request has {have}",
                                  param)


def validate_creation(body: Any) -> Creation:
    """The valid request in ``body``, or :class:`ApiError` 400 naming the offending field."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]}", unknown[0])
    if "model" not in body:
        raise bad_request("model is required", "model")
    if body["model"] != MODEL_ID:
        raise bad_request(f"model must be {MODEL_ID}", "model")
    duration = body.get("duration", 5)
    if not _is_int(duration) or not MIN_DURATION <= duration <= MAX_DURATION:
        raise bad_request(f"duration must be a whole number of seconds from {MIN_DURATION} "
                          f"to {MAX_DURATION}", "duration")
    has_prompt, has_multi = "prompt" in body, "multi_prompt" in body
    if has_prompt and has_multi:
        raise bad_request("prompt and multi_prompt are mutually exclusive", "multi_prompt")
    if not has_prompt and not has_multi:
        raise bad_request("prompt is required (or multi_prompt)", "prompt")
    if has_multi:
        segments = _segments(body, duration)
        if body.get("shot_type", "customize") != "customize":
            raise bad_request("shot_type must be customize", "shot_type")
    else:
        segments = ((_prompt(body["prompt"], "prompt"), duration),)
        if "shot_type" in body:
            raise bad_request("shot_type is sent only with multi_prompt", "shot_type")
    resolution = _enum(body, "resolution", RESOLUTIONS, "720p")
    aspect_ratio = _enum(body, "aspect_ratio", ASPECT_RATIOS, "16:9")
    audio = body.get("generate_audio", False)
    if not isinstance(audio, bool):
        raise bad_request("generate_audio must be true or false", "generate_audio")
    start = _url(body["start_image_url"], "start_image_url") if "start_image_url" in body else None
    end = _url(body["end_image_url"], "end_image_url") if "end_image_url" in body else None
    images = _url_list(body.get("image_urls", []), "image_urls")
    elements = _elements(body.get("elements", []))
    if any(e.video for e in elements) and len(elements) + len(images) > MAX_ITEMS_WITH_VIDEO:
        raise bad_request(f"with a video subject, elements and image_urls may hold at most "
                          f"{MAX_ITEMS_WITH_VIDEO} items together", "elements")
    _check_references([p for p, _ in segments], len(images), len(elements),
                      "multi_prompt" if has_multi else "prompt")
    callback = _check_callback(body["callback_url"]) if "callback_url" in body else None
    return Creation(
        model=MODEL_ID, segments=segments, multi=has_multi, resolution=resolution,
        aspect_ratio=aspect_ratio, duration=duration, generate_audio=audio,
        start_image_url=start, end_image_url=end, image_urls=images, elements=elements,
        callback_url=callback,
    )


def check_task_id(task_id: str) -> None:
    """400 ``param: task_id`` when ``task_id`` is not shaped like the gateway's ids."""
    if not TASK_ID_RE.match(task_id):
        raise ApiError(400, f"malformed task id {task_id[:80]!r}", param="task_id",
                       code="invalid_task_id")
