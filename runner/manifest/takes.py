"""From an expanded shot to frozen takes: the per-shot rules, resolution and fingerprint.

Everything a shot says is checked here against docs/manifest.md (exactly one of prompt and
multi_prompt, segment sums, reference positions, the video-subject limit), its media are
resolved, and, when the shot has no problem, it becomes ``takes`` :class:`~runner.core.model.Take`
objects sharing one :class:`~runner.core.model.TakeRequest` and one fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.core.model import (
    MAX_DURATION,
    MIN_DURATION,
    MODEL_ID,
    Element,
    Media,
    Segment,
    Take,
    TakeRequest,
    VideoElement,
    frozen_mapping,
)
from runner.manifest.context import Context, get_int, plain
from runner.manifest.expand import REFUSED, ShotSpec
from runner.manifest.graph import ShotIndex
from runner.manifest.mediarefs import MediaResolver
from runner.manifest.nodes import KeyPath, MDict, MList
from runner.manifest.prompts import Attached, finish
from runner.manifest.provider_limits import check_request
from runner.wire import payload as wire
from runner.wire.payload import DEFAULT_PROVIDER

MAX_WITH_VIDEO = 4


class TakeBuilder:
    """Builds the takes of each shot; problems go to the context."""

    def __init__(self, ctx: Context, media: MediaResolver, index: ShotIndex,
                 variables: Mapping[str, str], model: str = MODEL_ID,
                 renames: Mapping[str, str | None] | None = None,
                 provider: str = DEFAULT_PROVIDER, remote: bool = False) -> None:
        self.ctx = ctx
        self.provider = provider
        self.remote = remote  # the provider's real API, not the built-in emulator
        self.media = media
        self.index = index
        self.variables = variables
        self.model = model
        self.renames = dict(renames or {})
        self.used_vars: set[str] = set()

    def _image(self, spec: ShotSpec, value: Any, path: KeyPath) -> Media | None:
        if isinstance(value, MDict):
            return self.index.frame(self.ctx, spec.shot_id, spec.suffix, value, path)
        return self.media.image(value, path)

    def build(self, spec: ShotSpec) -> list[Take]:
        """The takes of one shot, or [] when it has a problem (reported)."""
        ctx = self.ctx
        errors_before = len(ctx.problems)
        fields, origin = spec.fields, spec.origin
        present = {k for k, v in fields.items() if v is not None}
        usable = {k for k in present if fields[k] is not REFUSED}

        after = fields.get("after")
        if isinstance(after, MList):
            self.index.after(ctx, spec.shot_id, after, origin["after"])

        images: list[Media] = []
        image_names: list[str | None] = []
        if isinstance(fields.get("images"), MList):
            for position, item in enumerate(fields["images"]):
                found = self._image(spec, item, (*origin["images"], position))
                if found is not None:
                    images.append(found)
                image_names.append(self.media.name_of_image(item))
        elements: list[Element] = []
        element_names: list[str | None] = []
        if isinstance(fields.get("elements"), MList):
            for position, item in enumerate(fields["elements"]):
                element = self.media.element(item, (*origin["elements"], position))
                if element is not None:
                    elements.append(element)
                element_names.append(self.media.name_of_element(item))
        frames: dict[str, Media | None] = {}
        for name in ("start_frame", "end_frame"):
            if name in usable:
                frames[name] = self._image(spec, fields[name], origin[name])

        if any(isinstance(e, VideoElement) for e in elements):
            count = len(image_names) + len(element_names)
            if count > MAX_WITH_VIDEO:
                ctx.error(origin["elements"], f"with a video subject, elements and images "
                          f"together may be at most {MAX_WITH_VIDEO} (this shot has "
                          f"{len(element_names)} + {len(image_names)}); remove some")

        attached = Attached(image_names, element_names, self.media.asset_defs,
                            self.media.element_defs)
        prompt, segments, duration = self._prompts(spec, present, usable, attached)

        new_errors = any(p.severity == "error" for p in ctx.problems[errors_before:])
        if new_errors or REFUSED in fields.values() or (prompt is None and segments is None):
            return []
        extra = fields.get("extra")
        request = TakeRequest(
            prompt=prompt,
            multi_prompt=segments,
            resolution=fields.get("resolution", "720p"),
            aspect_ratio=fields.get("aspect_ratio", "16:9"),
            duration=duration,
            generate_audio=bool(fields.get("generate_audio", False)),
            start_frame=frames.get("start_frame"),
            end_frame=frames.get("end_frame"),
            images=tuple(images),
            elements=tuple(elements),
            model=self.model,
            extra=frozen_mapping(plain(extra) if isinstance(extra, MDict) else None),
        )
        check_request(ctx, self.provider, request, origin, spec.path, remote=self.remote)
        if any(p.severity == "error" for p in ctx.problems[errors_before:]):
            return []
        fingerprint = wire.fingerprint(request, self.renames, provider=self.provider)
        tags = fields.get("tags")
        count = get_int(fields, "takes") or 1
        waits = self.index.waits_for(spec.shot_id)
        base = spec.base_id if spec.suffix else ""
        return [
            Take(shot_id=spec.shot_id, take=number, request=request, fingerprint=fingerprint,
                 tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, MList)
                 else (), after=waits, location=spec.location, base_shot_id=base)
            for number in range(1, count + 1)
        ]

    def _prompts(self, spec: ShotSpec, present: set[str], usable: set[str],
                 attached: Attached) -> tuple[str | None, tuple[Segment, ...] | None, int]:
        """The rewritten prompt or segments, and the duration (checked against the segments)."""
        ctx, fields, origin = self.ctx, spec.fields, spec.origin
        duration = get_int(fields, "duration") or 5
        has_prompt, has_multi = "prompt" in present, "multi_prompt" in present
        if has_prompt and has_multi:
            ctx.error(origin["multi_prompt"], "give either prompt or multi_prompt, not both; "
                                              "remove one of them")
            return None, None, duration
        if not has_prompt and not has_multi:
            ctx.error(spec.path, f"shot '{spec.base_id}' has no prompt; add `prompt: ...` "
                                 "(or `multi_prompt:`)")
            return None, None, duration
        if has_prompt:
            if "prompt" not in usable or not isinstance(fields["prompt"], str):
                return None, None, duration
            text = finish(fields["prompt"], self.variables, attached, ctx, origin["prompt"],
                          self.used_vars)
            return text, None, duration
        multi = fields["multi_prompt"]
        if "multi_prompt" not in usable or not isinstance(multi, MList):
            return None, None, duration
        segments: list[Segment] = []
        complete = True
        for position, item in enumerate(multi):
            where = (*origin["multi_prompt"], position)
            seconds = get_int(item, "duration")
            text = item.get("prompt") if isinstance(item, MDict) else None
            if not isinstance(text, str) or seconds is None:
                complete = False
                continue
            rewritten = finish(text, self.variables, attached, ctx, (*where, "prompt"),
                               self.used_vars)
            if rewritten is None:
                complete = False
                continue
            segments.append(Segment(prompt=rewritten, duration=seconds))
        if not complete:
            return None, None, duration
        total = sum(s.duration for s in segments)
        declared = origin.get("duration")
        own = declared is not None and declared[0] != "defaults" and "duration" in usable
        if own and declared is not None and fields["duration"] != total:
            ctx.error(declared, f"the multi_prompt segments add up to {total} s but "
                                f"duration is {fields['duration']}; make them agree or "
                                "leave duration out")
            return None, None, total
        if not MIN_DURATION <= total <= MAX_DURATION:
            side = "more" if total > MAX_DURATION else "less"
            ctx.error(origin["multi_prompt"], f"the segments add up to {total} s, {side} than "
                      f"allowed ({MIN_DURATION}..{MAX_DURATION}); change their durations")
            return None, None, total
        return None, tuple(segments), total
