"""Property: no mutation of a valid manifest gives anything but problems or ManifestError.

Two kinds of mutation: of the *text* (characters deleted, inserted, lines swapped; this finds
loader crashes) and of the *data* (any value anywhere replaced, keys dropped or invented; this
finds pass-2 code that trusts a value pass 1 refused). Any other exception, or a hang, fails.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.core.errors import ManifestError, Problem
from runner.manifest import load_manifest, validate_file
from tests.manifest.conftest import Write

BASE: dict[str, Any] = {
    "version": 1,
    "name": "fuzz",
    "api": {"base_url": "emulator", "wire": {"start_frame": "image_start"},
            "emulator": {"queue_time": 0.1, "error_rates": {"429": 0.1}}},
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
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*path, index)))
    return found


PATHS = _paths(BASE)[1:]
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


def _check(path: Path) -> None:
    problems = validate_file(path)
    assert all(isinstance(p, Problem) and p.location.file for p in problems)
    try:
        load_manifest(path)
    except ManifestError as exc:
        assert exc.problems
        assert any(p.severity == "error" for p in exc.problems)


def test_base_is_valid(write: Write) -> None:
    load_manifest(write(BASE_TEXT))


@FUZZ
@given(data=st.data())
def test_data_mutations_only_give_problems(write: Write, data: st.DataObject) -> None:
    mutated = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(mutated)[1:]
        path = data.draw(st.sampled_from(paths))
        op = data.draw(st.sampled_from(["replace", "delete", "rename"]))
        _set(mutated, path, data.draw(VALUES), op)
    _check(write(yaml.safe_dump(mutated, sort_keys=False, allow_unicode=True)))


@FUZZ
@given(data=st.data())
def test_text_mutations_only_give_problems(write: Write, data: st.DataObject) -> None:
    text = BASE_TEXT
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["delete", "insert", "swap", "duplicate", "truncate"]))
        at = data.draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)):]
        elif op == "insert":
            piece = data.draw(st.one_of(
                st.sampled_from(["\t", ":", "- ", "&a ", "*a", "!!python/name:os.system ",
                                 "{", "[", "]", '"', "'", "\x00", "\x85", "\ufeff", "<<: *a\n",
                                 "? ", "|\n", "---\n", "%YAML 1.1\n", "\n  - x\n"]),
                st.text(max_size=5)))
            text = text[:at] + piece + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if not lines:
                continue
            i = min(at, len(lines) - 1)
            j = data.draw(st.integers(0, len(lines) - 1))
            if op == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            elif op == "duplicate":
                lines.insert(j, lines[i])
            else:
                lines = lines[:i]
            text = "".join(lines)
    _check(write(text))
