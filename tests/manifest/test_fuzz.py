"""Property: no mutation of a valid manifest gives anything but problems or ManifestError.

Two kinds of mutation: of the *text* (characters deleted, inserted, lines swapped; this finds
loader crashes) and of the *data* (any value anywhere replaced, keys dropped or invented; this
finds pass-2 code that trusts a value pass 1 refused). Any other exception, or a hang, fails.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.core.errors import ManifestError, Problem
from runner.manifest import load_manifest, validate_file
from tests.helpers.manifest_fuzz import BASE, VALUES, _paths, _set
from tests.manifest.conftest import Write

BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


PATHS = _paths(BASE)[1:]


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
