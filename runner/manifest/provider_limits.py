"""The limits of fal.ai and the Kling API that differ from the gateway's, as manifest problems.

A shot that one provider renders may be refused by another. Finding that at the provider
costs a creation (and, on a rough provider, maybe money); finding it here costs nothing: each
limit is a problem located at the shot's field, reported by ``validate`` (and so by ``plan``
and ``run``) before anything is sent. The numbers come from docs/providers.md and from the
translation modules that make the bodies (:mod:`.kling`, :mod:`.fal`), so a prompt is
measured as it will be sent (``@Image1`` becomes ``<<<image_1>>>`` on Kling).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from runner.core.model import (
    MAX_PROMPT_CHARS,
    FrameRef,
    ImageElement,
    LocalFile,
    Media,
    TakeRequest,
)
from runner.manifest.context import Context
from runner.manifest.nodes import KeyPath
from runner.wire import kling as kling_wire
from runner.wire.payload import build_payload, preview_resolver
from runner.wire.specs import FAL, GATEWAY, KLING, spec


def check_request(ctx: Context, provider: str, request: TakeRequest,
                  origin: Mapping[str, KeyPath], shot: KeyPath, *, remote: bool) -> None:
    """Report, at the field that causes it, what ``provider`` would refuse in ``request``.

    ``remote``: the provider is the real one, not the built-in emulator (which has a file
    service for local images).
    """
    if provider == GATEWAY:
        return

    def where(name: str) -> KeyPath:
        return origin.get(name, shot)

    if remote:
        _local_media(ctx, provider, request, where)
    if provider == KLING:
        _kling(ctx, request, where)
    elif provider == FAL and request.resolution not in ("720p", "1080p", "4k"):
        ctx.error(where("resolution"), "fal.ai has no app for this resolution")


def _is_local(media: Media) -> bool:
    return isinstance(media, LocalFile | FrameRef)


def _local_media(ctx: Context, provider: str, request: TakeRequest,
                 where: Callable[[str], KeyPath]) -> None:
    """Local images (and frames cut from other shots) need a file service; neither fal.ai
    nor the Kling API documents one, so they are refused with the way out."""
    label = spec(provider).label
    message = (f"{label} takes images by URL only (it documents no upload service): use "
               "an http(s) URL here, or render this shot with the gateway or api.base_url: "
               "emulator")
    places: list[KeyPath] = []
    for name in ("start_frame", "end_frame"):
        media = getattr(request, name)
        if media is not None and _is_local(media):
            places.append(where(name))
    for position, image in enumerate(request.images):
        if _is_local(image):
            places.append((*where("images"), position))
    for position, element in enumerate(request.elements):
        if isinstance(element, ImageElement) and any(
                _is_local(m) for m in (element.frontal, *element.references)):
            places.append((*where("elements"), position))
    for place in places:
        ctx.error(place, message)


def _kling(ctx: Context, request: TakeRequest, where: Callable[[str], KeyPath]) -> None:
    if request.resolution not in kling_wire.MODES:
        ctx.error(where("resolution"), f"the Kling API's modes are std (720p) and pro "
                  f"(1080p); {request.resolution} is not one of them: use 720p or 1080p, or "
                  "another provider")
    body = kling_wire.translate(build_payload(request, preview_resolver))
    images = len(body.get("image_list", ()))
    videos = len(body.get("video_list", ()))
    limit = kling_wire.MAX_ITEMS_WITH_VIDEO if videos else kling_wire.MAX_ITEMS
    if images + videos > limit:
        with_video = "with a video subject" if videos else "without a video subject"
        ctx.error(where("elements" if request.elements else "images"),
                  f"the Kling API takes at most {limit} images and elements {with_video} "
                  f"(this shot sends {images} images and {videos} videos, counting each "
                  "element's images and the start and end frames); remove some")
    if any(isinstance(e, ImageElement) for e in request.elements):
        ctx.warn(where("elements"), "the Kling API takes subjects only as ids registered "
                 "beforehand (element_list), so this shot's elements are sent as reference "
                 "images, and @Element<n> points at each element's frontal image")
    segments = body.get("multi_prompt")
    if segments:
        if len(segments) > kling_wire.MAX_SEGMENTS:
            ctx.error(where("multi_prompt"), f"the Kling API takes at most "
                      f"{kling_wire.MAX_SEGMENTS} multi-shot segments; merge some")
        for position, segment in enumerate(segments):
            if len(segment["prompt"]) > kling_wire.MAX_SEGMENT_CHARS:
                ctx.error((*where("multi_prompt"), position, "prompt"),
                          f"the Kling API takes at most {kling_wire.MAX_SEGMENT_CHARS} "
                          f"characters per multi-shot segment (this one is "
                          f"{len(segment['prompt'])} as sent); shorten it")
    elif len(body.get("prompt", "")) > MAX_PROMPT_CHARS:
        ctx.error(where("prompt"), f"the prompt is {len(body['prompt'])} characters as the "
                  f"Kling API receives it (references become <<<image_n>>>), more than "
                  f"{MAX_PROMPT_CHARS}; shorten it")
