"""Links between shots: ``after`` and ``from_shot``, resolved to expanded ids and checked.

A link may name a shot by its written id or by an expanded id. A written id with a matrix
stands for all of its expansions in ``after``; in ``from_shot`` (which needs exactly one
source) it means the expansion with the *same matrix suffix* when there is one, so that
``s03`` with ``matrix: {aspect_ratio: [...]}`` continues ``s02`` with the same matrix
shot-for-shot; otherwise it is ambiguous and refused.

Links must not form a cycle: a cycle would make the run wait forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from runner.core.model import FrameRef
from runner.manifest.context import Context
from runner.manifest.nodes import KeyPath, MDict, did_you_mean


class ShotIndex:
    """Expanded shot ids, by written id, with the links found while resolving shots."""

    def __init__(self, shots: Iterable[tuple[str, str]]) -> None:
        """``shots``: (expanded id, written id) pairs in manifest order."""
        self.ids: dict[str, str] = {}
        self.by_base: dict[str, list[str]] = {}
        for shot_id, base in shots:
            self.ids[shot_id] = base
            self.by_base.setdefault(base, []).append(shot_id)
        # expanded id -> [(expanded id it waits for, where the link is written)]
        self.links: dict[str, list[tuple[str, KeyPath]]] = {}
        self.frame_refs: list[tuple[FrameRef, KeyPath]] = []  # with where `frame` is written

    def _unknown(self, ctx: Context, path: KeyPath, name: str, what: str) -> None:
        hint = did_you_mean(name, list(self.by_base) + list(self.ids))
        ctx.error(path, f"{what} '{name}' names no shot of this manifest{hint}")

    def after(self, ctx: Context, shot_id: str, names: Sequence[Any],
              path: KeyPath) -> list[str]:
        """The expanded ids a shot's ``after:`` list waits for."""
        found: list[str] = []
        for index, name in enumerate(names):
            where = (*path, index)
            if not isinstance(name, str) or not ctx.ok(where):
                continue
            targets = self.by_base.get(name) or ([name] if name in self.ids else [])
            if not targets:
                self._unknown(ctx, where, name, "after:")
                continue
            for target in targets:
                self.links.setdefault(shot_id, []).append((target, where))
                found.append(target)
        return found

    def frame(self, ctx: Context, shot_id: str, suffix: str, value: MDict,
              path: KeyPath) -> FrameRef | None:
        """The :class:`FrameRef` of a ``{from_shot, frame}`` mapping of shot ``shot_id``."""
        name = value.get("from_shot")
        if not isinstance(name, str) or not ctx.ok(path):
            return None
        where = (*path, "from_shot")
        if name in self.ids:
            target = name
        else:
            choices = self.by_base.get(name)
            if not choices:
                self._unknown(ctx, where, name, "from_shot")
                return None
            if len(choices) == 1:
                target = choices[0]
            elif f"{name}{suffix}" in self.ids:
                target = f"{name}{suffix}"
            else:
                ctx.error(where, f"from_shot '{name}' has a matrix, so it is "
                                 f"{len(choices)} shots; name one: {', '.join(choices[:5])}")
                return None
        frame = value.get("frame", "last")
        if isinstance(frame, bool):
            return None
        self.links.setdefault(shot_id, []).append((target, where))
        ref = FrameRef(shot_id=target, frame=frame if isinstance(frame, str) else float(frame))
        self.frame_refs.append((ref, (*path, "frame")))
        return ref

    def check_frame_times(self, ctx: Context, durations: dict[str, int]) -> None:
        """A frame given in seconds must lie within its source shot's duration."""
        for ref, where in self.frame_refs:
            length = durations.get(ref.shot_id)
            if isinstance(ref.frame, float) and length is not None and ref.frame > length:
                ctx.error(where, f"{ref.frame:g} s is past the end of {ref.shot_id} "
                                 f"({length} s long); use a time up to {length}, or last")

    def check_cycles(self, ctx: Context) -> None:
        """Report each cycle of links once, at the link that closes it."""
        state: dict[str, int] = {}  # 1 on the current path, 2 done
        reported: set[frozenset[str]] = set()
        for start in self.links:
            if state.get(start):
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            trail: list[str] = [start]
            state[start] = 1
            while stack:
                node, position = stack[-1]
                edges = self.links.get(node, [])
                if position >= len(edges):
                    stack.pop()
                    trail.pop()
                    state[node] = 2
                    continue
                stack[-1] = (node, position + 1)
                target, where = edges[position]
                mark = state.get(target, 0)
                if mark == 1:
                    cycle = [*trail[trail.index(target):], target]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        ctx.error(where, "shots wait for each other in a circle: "
                                         f"{' -> '.join(cycle)}; remove one of these links")
                elif mark == 0:
                    state[target] = 1
                    stack.append((target, 0))
                    trail.append(target)

    def waits_for(self, shot_id: str) -> tuple[str, ...]:
        """The distinct expanded ids ``shot_id`` waits for, in the order they are written."""
        seen: dict[str, None] = {}
        for target, _ in self.links.get(shot_id, ()):
            seen.setdefault(target, None)
        return tuple(seen)
