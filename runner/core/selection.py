"""``--only ID|TAG``: which takes a selector names, the same for ``run``, ``plan`` and ``status``.

A selector names a take by its shot id, the shot's id before matrix expansion, the take's own
key (``shot/take-N``) or one of its tags. ``run`` and ``plan`` select from the manifest's
takes; ``status`` from the store's records (it must not pay for loading ``run``'s engine):
both ask :func:`names_take`, so the rule is written once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from runner.core.errors import UsageError
from runner.core.model import Manifest, Take


def names_take(selector: str, names: Collection[str], tags: Collection[str]) -> bool:
    """True when ``selector`` is one of a take's ``names`` (shot id, base shot id, key) or
    ``tags``."""
    return selector in names or selector in tags


def select_takes(manifest: Manifest, only: Sequence[str]) -> list[Take]:
    """The takes ``--only`` asks for, in manifest order (all without it); a selector that
    names nothing is a usage error (a typo must not silently select nothing)."""
    if not only:
        return list(manifest.takes)
    chosen: dict[str, Take] = {}
    for selector in only:
        matched = [t for t in manifest.takes
                   if names_take(selector, (t.shot_id, t.base_shot_id, t.key), t.tags)]
        if not matched:
            raise UsageError(f"--only {selector}: no shot id or tag of {manifest.path} "
                             f"matches it")
        chosen.update((t.key, t) for t in matched)
    return [take for take in manifest.takes if take.key in chosen]
