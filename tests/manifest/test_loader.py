"""The YAML loader: marks, YAML 1.2 scalars, merge keys, tags, aliases and their bounds."""

from __future__ import annotations

import pytest

from runner.core.errors import ManifestError
from runner.manifest.loader import ALIAS_SLACK, MAX_DEPTH, parse, resolve_plain
from runner.manifest.nodes import MDict, MList, format_path, locate


def _one_problem(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        parse(text, "f.yaml")
    (problem,) = caught.value.problems
    return str(problem)


def test_every_key_and_value_has_its_mark() -> None:
    root, problems = parse("a: 1\nb:\n  - x\n  - {c: true}\n", "f.yaml")
    assert problems == []
    assert isinstance(root, MDict) and isinstance(root["b"], MList)
    assert root.key_marks == {"a": (1, 1), "b": (2, 1)}
    assert root.value_marks["a"] == (1, 4)
    assert root["b"].item_marks == [(3, 5), (4, 5)]
    assert locate(root, ("b", 1, "c")) == (4, 9)
    assert locate(root, ("b", 1, "c"), key=True) == (4, 6)
    assert locate(root, ("b", 1, "missing")) == (4, 5)  # the mapping that should hold it
    assert format_path(("b", 1, "c")) == "b[1].c"


@pytest.mark.parametrize(("text", "value"), [
    ("16:9", "16:9"), ("no", "no"), ("yes", "yes"), ("on", "on"), ("true", True),
    ("False", False), ("~", None), ("null", None), ("", None), ("12", 12), ("-3", -3),
    ("0x1f", 31), ("0o17", 15), ("1.5", 1.5), ("1e3", 1000.0), ("720p", "720p"),
    ("2026-01-01", "2026-01-01"), (".inf", ".inf"), ("1_000", "1_000"), ("012", 12),
])
def test_plain_scalars_follow_yaml_1_2_core(text: str, value: object) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_quoted_scalars_stay_strings_and_keys_stay_text() -> None:
    root, _ = parse("'1': \"2\"\n429: 0.5\ntrue: x\n", "f.yaml")
    assert root == {"1": "2", "429": 0.5, "true": "x"}


def test_merge_keys_and_anchors() -> None:
    root, problems = parse(
        "base: &b {x: 1, y: 2}\nother: &o {z: 3}\n"
        "m: {<<: [*b, *o], y: 5}\nq: {'<<': literal}\n", "f.yaml")
    assert problems == []
    assert root["m"] == {"x": 1, "y": 5, "z": 3}
    assert root["m"].value_marks["x"] == (1, 14)  # where the merged value is written
    assert root["q"] == {"<<": "literal"}
    assert root["m"]["x"] == root["base"]["x"]


def test_duplicate_keys_are_all_reported() -> None:
    root, problems = parse("a: 1\na: 2\nb: {c: 1, c: 2}\n", "f.yaml")
    assert root["a"] == 1
    assert [str(p) for p in problems] == [
        "f.yaml:2:1: a: duplicate key 'a' (first at line 1); keep only one of them",
        "f.yaml:3:11: b.c: duplicate key 'c' (first at line 3); keep only one of them"]


def test_explicit_plain_tags_are_accepted() -> None:
    root, _ = parse("a: !!str 12\nb: !!int '7'\nc: !!float 2\n", "f.yaml")
    assert root == {"a": "12", "b": 7, "c": 2.0}


@pytest.mark.parametrize(("text", "needle"), [
    ("a: !!int x\n", "f.yaml:1:4: a: 'x' is not a valid int"),
    ("a: !custom 1\n", "YAML tag '!custom' is not allowed"),
    ("a: !!set {x}\n", "YAML tag '!!set' is not allowed"),
    ("a: !!binary aGk=\n", "YAML tag '!!binary' is not allowed"),
    ("a: !!python/name:os.system\n", "YAML tag '!!python/name:os.system' is not allowed"),
    ("a: *nope\n", "f.yaml:1:4: a: alias *nope has no anchor &nope before it"),
    ("a: &x {b: *x}\n", "alias *x refers to a node that contains it"),
    ("? [a]\n: 1\n", "a key must be a plain name"),
    ("a: 1\n---\nb: 2\n", "holds more than one YAML document"),
    ("a: [1, 2\n", "YAML syntax error"),
    ("a: 1\n\tb: 2\n", "f.yaml:2:1: a tab is used for indentation"),
    ("[" * (MAX_DEPTH + 5), f"nested deeper than {MAX_DEPTH} levels"),
])
def test_refusals(text: str, needle: str) -> None:
    assert needle in _one_problem(text)


def test_aliases_within_bounds_are_fine() -> None:
    item = "{" + ", ".join(f"k{i}: {i}" for i in range(20)) + "}"
    text = f"base: &b {item}\nlist:\n" + "  - *b\n" * 200
    root, _ = parse(text, "f.yaml")
    assert len(root["list"]) == 200


def test_alias_bomb_fails_at_once() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 30):  # 10**30 nodes if expanded
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    message = _one_problem("\n".join(lines))
    assert "billion laughs" in message
    assert message.startswith("f.yaml:4:")  # refused on the 4th of 30 lines
    assert ALIAS_SLACK < 10**5
