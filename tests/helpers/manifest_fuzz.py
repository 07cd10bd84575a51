"""A valid base manifest and the values the schema fuzzing sets in it.

Moved from ``tests.manifest.test_fuzz`` so that no test module imports another."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

BASE: dict[str, Any] = {
    "version": 1,
    "name": "fuzz",
    "api": {"base_url": "emulator", "wire": {"start_frame": "image_start"},
            "emulator": {"queue_time": 0.1, "error_rates": {"429": 0.1}},
            "accounts": [{"name": "a", "api_key_env": "KEY_A"},
                         {"name": "b", "api_key_env": "KEY_B", "concurrency": 2}]},
    "state": {"url": "postgresql://team@db.example/shots"},
    "budget": {"max_credits": 100, "rates": {"720p": 8.1, "audio": 1}},
    "vars": {"place": "Big Sur"},
    "assets": {"coast": "ok2.jpg", "web": "https://cdn.example/w.jpg"},
    "elements": {"hero": {"frontal": "ok.png", "references": ["anim.gif"]},
                 "dancer": {"video": "https://cdn.example/d.mp4"}},
    "defaults": {"resolution": "720p", "duration": 4},
    "shots": [
        {"id": "s01", "prompt": "@coast at ${place}, @hero", "images": ["coast"],
         "elements": ["hero"], "takes": 2, "start_frame": "coast"},
        {"id": "s02", "multi_prompt": [{"prompt": "@hero", "duration": 2},
                                       {"prompt": "@Element1 smiles", "duration": 3}],
         "elements": ["hero"], "matrix": {"aspect_ratio": ["16:9", "9:16"]}},
        {"id": "s03", "prompt": "@dancer", "elements": ["dancer"], "after": ["s01"],
         "end_frame": {"from_shot": "s01", "frame": "last"}, "extra": {"seed": 1}},
    ],
}


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*path, index)))
    return found


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
    st.text(max_size=30), st.sampled_from(["", "@hero", "${place}", "${nope}", "@Image9",
                                           "file:///x", "ok.png", "text.png", "s01", "16:9",
                                           "sk-live-0123456789abcdefABCDEF", "https://x.example",
                                           "720p", "last", "<<"]),
)


VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8)


def _set(data: Any, path: tuple[Any, ...], value: Any, op: str) -> None:
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "rename" and isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    else:
        parent[last] = value
