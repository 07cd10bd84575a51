"""Resolving what a manifest names as media: assets, elements, paths, URLs, frames of shots.

A string in ``images``, ``start_frame``, ``end_frame`` or an element's ``frontal`` /
``references`` is, in this order: a declared asset name, an http(s) URL, or a local path
relative to the manifest. A string in a shot's ``elements`` is an element name; an inline
``{frontal, references}`` or ``{video}`` mapping defines an element on the spot. A
``{from_shot, frame}`` mapping is left to :mod:`.graph`, because only expansion knows the
final shot ids.

Named assets and elements are resolved once, where they are declared, and problems are
reported there (not at each of the thousand shots using them).
"""

from __future__ import annotations

import re
from typing import Any

from runner.core.model import Element, ImageElement, Media, VideoElement
from runner.manifest.assets import LocalFiles, is_url, url_problem
from runner.manifest.context import Context, get_list, get_map
from runner.manifest.nodes import KeyPath, MDict, did_you_mean

RESERVED_NAME = re.compile(r"^(Image|Element)[0-9]+$")
_MISSING: Any = object()


class MediaResolver:
    """Turns media references into :data:`~runner.core.model.Media` and elements, reporting
    problems."""

    def __init__(self, ctx: Context, files: LocalFiles) -> None:
        self.ctx = ctx
        self.files = files
        self.asset_defs = get_map(ctx.root, "assets") or MDict()
        self.element_defs = get_map(ctx.root, "elements") or MDict()
        self.assets: dict[str, Media | None] = {}
        self.elements: dict[str, Element | None] = {}
        self._inline: dict[int, Element | None] = {}

    # -- declarations ----------------------------------------------------------------------
    def declare(self) -> None:
        """Check the names and the media of ``assets:`` and ``elements:`` (once each)."""
        for name in self.asset_defs:
            self._check_name(("assets", name), name)
            path: KeyPath = ("assets", name)
            value = self.asset_defs[name]
            self.assets[name] = self._source(value, path) if self.ctx.ok(path) else None
        for name in self.element_defs:
            path = ("elements", name)
            self._check_name(path, name)
            if name in self.asset_defs:
                self.ctx.error(path, f"'{name}' is both an asset and an element; @{name} "
                                     "must mean one thing: rename one of them", key=True)
            value = self.element_defs[name]
            ok = self.ctx.ok(path) and isinstance(value, MDict)
            self.elements[name] = self._element(value, path) if ok else None

    def _check_name(self, path: KeyPath, name: str) -> None:
        if RESERVED_NAME.match(name):
            self.ctx.error(path, f"'{name}' is reserved: @{name} already means a position in "
                                 "the shot's lists; choose another name", key=True)

    # -- images ----------------------------------------------------------------------------
    def _source(self, value: Any, path: KeyPath) -> Media | None:
        """A string that is not an asset name: an http(s) URL or a local image file."""
        if not isinstance(value, str):
            return None
        problem = url_problem(value)
        if problem is not None:
            self.ctx.error(path, problem)
            return None
        if is_url(value):
            return value
        checked = self.files.check(value)
        if checked.problem is not None:
            self.ctx.error(path, checked.problem + self._asset_hint(value, path, checked.problem))
            return None
        if checked.warning is not None:
            self.ctx.warn(path, f"{value!r} {checked.warning}")
        return checked.file

    def _asset_hint(self, value: str, path: KeyPath, problem: str) -> str:
        """A near-miss asset name for a bare word that is no file, never the asset itself.

        Under ``assets:`` the value is a path and only a path: naming the asset being declared
        (``moon: moon.png`` -> "did you mean the asset 'moon'?") would send the reader in a
        circle, so a declaration gets no hint and its own name is never suggested.
        """
        if path[:1] == ("assets",) or "/" in value or "\\" in value:
            return ""
        if not problem.startswith("no such"):
            return ""
        hint = did_you_mean(value, list(self.asset_defs))
        return hint.replace("did you mean", "or did you mean the asset") if hint else ""

    def image(self, value: Any, path: KeyPath) -> Media | None:
        """An image reference given as a string: an asset name, a URL or a path."""
        if not self.ctx.ok(path):
            return None
        if isinstance(value, str):
            found = self.assets.get(value, _MISSING)
            if found is not _MISSING:
                result: Media | None = found
                return result
            return self._source(value, path)
        return None

    # -- elements --------------------------------------------------------------------------
    def element(self, value: Any, path: KeyPath) -> Element | None:
        """An entry of a shot's ``elements``: an element name or an inline element."""
        if not self.ctx.ok(path):
            return None
        if isinstance(value, str):
            if value in self.elements:
                return self.elements[value]
            if value in self.asset_defs:
                self.ctx.error(path, f"'{value}' is an asset, not an element; list it under "
                                     "images, or declare an element with it as frontal")
                return None
            hint = did_you_mean(value, list(self.element_defs))
            self.ctx.error(path, f"unknown element '{value}'{hint}; declare it under "
                                 "elements: or write it inline as {frontal: ...}")
            return None
        if isinstance(value, MDict):
            key = id(value)  # an inline element from defaults is shared by many shots
            if key not in self._inline:
                self._inline[key] = self._element(value, path)
            return self._inline[key]
        return None

    def _element(self, value: MDict, path: KeyPath) -> Element | None:
        video = value.get("video", _MISSING)
        frontal = value.get("frontal", _MISSING)
        references = get_list(value, "references")
        if video is not _MISSING:
            if frontal is not _MISSING or "references" in value:
                self.ctx.error(path, "an element is either {frontal, references} or {video}, "
                                     "not both; split it into two elements")
                return None
            if not isinstance(video, str):
                return None
            problem = url_problem(video)
            if problem is None and not is_url(video):
                problem = ("a video subject must be an http(s) URL: the file service takes "
                           "images only")
            if problem is not None:
                self.ctx.error((*path, "video"), problem)
                return None
            return VideoElement(video=video)
        if frontal is _MISSING:
            self.ctx.error(path, "an element needs `frontal:` (an image, with optional "
                                 "references) or `video:` (an http(s) URL)")
            return None
        front = self.image(frontal, (*path, "frontal"))
        refs: list[Media] = []
        complete = front is not None
        for index, item in enumerate(references or ()):
            media = self.image(item, (*path, "references", index))
            if media is None:
                complete = False
            else:
                refs.append(media)
        if not complete or front is None:
            return None
        return ImageElement(frontal=front, references=tuple(refs))

    def name_of_image(self, value: Any) -> str | None:
        """The asset name a shot's image entry uses, for ``@name`` rewriting."""
        return value if isinstance(value, str) and value in self.asset_defs else None

    def name_of_element(self, value: Any) -> str | None:
        """The element name a shot's elements entry uses, for ``@name`` rewriting."""
        return value if isinstance(value, str) and value in self.element_defs else None

