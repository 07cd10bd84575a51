"""Expansion of the ``shots:`` list: defaults, then the shot's own fields, then its matrix.

Each written shot becomes one :class:`ShotSpec` per matrix combination, with id
``<id>.<slug>`` (one slug per matrix key, in the order written: ``s02-look.16x9``). A spec
keeps, for every field, the key path where its value was *written* (in the shot, in
``defaults`` or in the matrix), so that a problem found later points at the text to fix.

``defaults`` fill in what a shot does not say. ``prompt`` and ``multi_prompt`` count as one
slot (a shot that writes either one takes neither from the defaults), and a default
``duration`` does not apply to a ``multi_prompt`` shot, whose duration is its segments' sum.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from runner.core.errors import Location
from runner.manifest.context import Context, get_list, get_map
from runner.manifest.nodes import KeyPath, MDict, MList

SHOT_ONLY = frozenset({"id", "matrix", "after"})
PROMPT_SLOT = ("prompt", "multi_prompt")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SLUG = 32
MAX_COMBINATIONS = 10_000
REFUSED: Any = type("Refused", (), {"__repr__": lambda self: "<refused by the schema>"})()
_SLUG_BAD = re.compile(r"[^a-z0-9._-]+")


@dataclass(slots=True)
class ShotSpec:
    """One shot after defaults and matrix: field values and where each was written."""

    shot_id: str
    base_id: str
    index: int  # position in shots:
    suffix: str  # "" or ".<slug>..." added by the matrix
    fields: dict[str, Any]
    origin: dict[str, KeyPath]
    location: Location

    @property
    def path(self) -> KeyPath:
        return ("shots", self.index)


def slug(value: Any, position: int) -> str:
    """The id part for one matrix value: ``"16:9"`` -> ``16x9``, ``720p`` -> ``720p``."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value).lower().replace(":", "x")
    else:
        return f"v{position + 1}"
    text = _SLUG_BAD.sub("-", text).strip("-.")[:MAX_SLUG].strip("-.")
    return text or f"v{position + 1}"


def _base_fields(ctx: Context, shot: MDict, index: int,
                 defaults: MDict | None) -> tuple[dict[str, Any], dict[str, KeyPath]]:
    fields: dict[str, Any] = {}
    origin: dict[str, KeyPath] = {}
    own_prompt = any(name in shot for name in PROMPT_SLOT)
    if defaults is not None:
        for name, value in defaults.items():
            if own_prompt and name in PROMPT_SLOT:
                continue
            path: KeyPath = ("defaults", name)
            fields[name] = value if ctx.ok(path) else REFUSED
            origin[name] = path
    for name, value in shot.items():
        if name in SHOT_ONLY and name != "after":
            continue
        path = ("shots", index, name)
        fields[name] = value if ctx.ok(path) else REFUSED
        origin[name] = path
    return fields, origin


def _combinations(ctx: Context, shot: MDict, index: int) -> list[list[tuple[str, int, Any]]]:
    """The matrix's combinations as [(field, value position, value), ...]; [[]] without one."""
    matrix = get_map(shot, "matrix")
    path: KeyPath = ("shots", index, "matrix")
    if matrix is None or not ctx.ok(path):
        return [[]]
    axes: list[list[tuple[str, int, Any]]] = []
    total = 1
    for name, values in matrix.items():
        if isinstance(values, MList) and values:
            axes.append([(name, position, value) for position, value in enumerate(values)])
            total *= len(values)
    if total > MAX_COMBINATIONS:
        ctx.error(path, f"the matrix makes {total} shots, more than {MAX_COMBINATIONS}; "
                        "use fewer values")
        return [[]]
    return [list(combo) for combo in itertools.product(*axes)]


def expand_shots(ctx: Context) -> list[ShotSpec]:
    """Every shot after defaults and matrix, in manifest order; duplicate ids are reported."""
    shots = get_list(ctx.root, "shots") or MList()
    defaults = get_map(ctx.root, "defaults")
    specs: list[ShotSpec] = []
    seen: dict[str, KeyPath] = {}
    for index, shot in enumerate(shots):
        base_id = shot.get("id") if isinstance(shot, MDict) else None
        if not isinstance(shot, MDict) or not isinstance(base_id, str):
            continue
        if not ctx.ok(("shots", index, "id")):
            continue
        fields, origin = _base_fields(ctx, shot, index, defaults)
        line, column = shot.mark
        location = Location(ctx.file, line, column)
        for combo in _combinations(ctx, shot, index):
            shot_fields, shot_origin = fields, origin
            suffix = ""
            if combo:
                shot_fields, shot_origin = dict(fields), dict(origin)
                for name, position, value in combo:
                    if name in PROMPT_SLOT:
                        for other in PROMPT_SLOT:
                            if shot_origin.get(other, ("",))[0] == "defaults":
                                del shot_fields[other], shot_origin[other]
                    shot_fields[name] = value
                    shot_origin[name] = ("shots", index, "matrix", name, position)
                    suffix += "." + slug(value, position)
            shot_id = base_id + suffix
            id_path: KeyPath = ("shots", index, "id")
            if shot_id in seen:
                first = ctx.location(seen[shot_id])
                how = "the matrix makes" if suffix else "there are"
                ctx.error(id_path, f"{how} two shots with the id '{shot_id}' (first at line "
                                   f"{first.line}); ids must be unique after matrix expansion")
                continue
            if suffix and not ID_PATTERN.match(shot_id):
                ctx.error(("shots", index, "matrix"), f"the matrix makes the id '{shot_id}', "
                          "which is not a valid shot id (at most 64 characters); shorten the "
                          "id or the values")
                continue
            seen[shot_id] = id_path
            specs.append(ShotSpec(shot_id, base_id, index, suffix, shot_fields, shot_origin,
                                  location))
    return specs
