"""Pass 1: the JSON Schema check, with every error turned into a located, actionable line.

The schema file (``runner/data/manifest.schema.json``, also ``schemas/``) is the single
description of the manifest's shape: editors use it for completion, and this module validates
with it. jsonschema's own messages are written for schema authors ("Additional properties are
not allowed"); here each error kind gets a message for the person editing the YAML, located at
the offending key or value, with a "did you mean" for near-miss keys and values.

The schema is dereferenced once in memory (its ``$ref`` are plain, non-recursive) because
resolving references is most of jsonschema's cost on a manifest with thousands of shots.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from runner.core.errors import Location, Problem
from runner.manifest.fastcheck import Check, compile_schema
from runner.manifest.nodes import (
    KeyPath,
    MDict,
    did_you_mean,
    format_path,
    kind,
    locate,
    show,
)
from runner.manifest.secrets import KEY_FIELD_NAMES, key_env, key_field_message

if TYPE_CHECKING:  # jsonschema takes a tenth of a second to import; a valid file never needs it
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "object": "a mapping (key: value)",
    "array": "a list",
    "null": "null",
}
_REQUIRED_HINTS = {
    "version": "add `version: 1` at the top",
    "name": "add a project name such as `name: my-film`",
    "shots": "add a `shots:` list with at least one shot",
    "id": "give every shot a unique `id:`",
    "from_shot": "name the shot whose output gives the frame",
    "prompt": "add the segment's `prompt:`",
    "duration": "add the segment's `duration:` in seconds",
}
# An entry of api.accounts has keys of the same names as the top level's and the api's.
_ACCOUNT_HINTS = {
    "name": "give the account a short label such as `name: studio-a`",
    "api_key_env": "give the NAME of the variable holding this account's key, such as "
                   "`api_key_env: STUDIO_A_KEY`",
}


def schema_text() -> str:
    """The manifest JSON Schema, as shipped in the package."""
    return (resources.files("runner") / "data" / "manifest.schema.json").read_text("utf-8")


@cache
def load_schema() -> dict[str, Any]:
    """The manifest JSON Schema as data (cached; do not modify)."""
    data: dict[str, Any] = json.loads(schema_text())
    return data


def _deref(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            target = _deref(defs[name], defs)
            siblings = {k: _deref(v, defs) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings}
        return {k: _deref(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_deref(item, defs) for item in node]
    return node


@cache
def dereferenced() -> dict[str, Any]:
    """The schema with every ``$ref`` replaced by its target (cached; do not modify)."""
    schema = load_schema()
    data: dict[str, Any] = _deref(schema, schema.get("$defs", {}))
    return data


@cache
def validator() -> Draft202012Validator:
    """A jsonschema validator for the dereferenced schema (built once per process).

    Only a manifest the compiled check refuses gets here, to word its problems.
    """
    from jsonschema import Draft202012Validator

    return Draft202012Validator(dereferenced())


@cache
def fast_check() -> Check:
    """The compiled yes/no check of the same schema (see :mod:`.fastcheck`)."""
    return compile_schema(dereferenced())


def _words(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_WORDS.get(name, name) for name in names)


def _range(schema: dict[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum")
    if low is not None and high is not None:
        return f"(allowed {low}..{high})"
    if high is not None:
        return f"(at most {high})"
    return f"(at least {low})" if low is not None else ""


def _branch_rank(errors: list[ValidationError]) -> int:
    """How well an anyOf branch fits the value: 0 wrong type, 1 wrong value, 2 deeper error."""
    top = [e for e in errors if not e.relative_path]
    if any(e.validator == "type" for e in top):
        return 0
    if any(e.validator in ("enum", "const") for e in top):
        return 1
    return 2


def _alternatives(schema: dict[str, Any]) -> str:
    words = []
    for branch in schema.get("anyOf", schema.get("oneOf", [])):
        if "type" in branch:
            words.append(_words(branch["type"]))
        elif "enum" in branch:
            words.append(" or ".join(show(v) for v in branch["enum"]))
    return " or ".join(words) or "another kind of value"


def _keys_of(schema: Any) -> set[str]:
    """The property names a (dereferenced) schema allows, through anyOf/oneOf/allOf."""
    if not isinstance(schema, dict):
        return set()
    keys = set(schema.get("properties", {}))
    for word in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(word, ()):
            keys |= _keys_of(branch)
    return keys


def _lost_indentation(name: str, mapping: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The sibling above ``name`` that allows it as a key: ``name`` lost its indentation.

    Siblings are searched upwards from ``name`` (the file's order), stopping at the first one
    whose value is a mapping, a list of mappings or empty (``defaults:`` whose keys all lost
    their indentation) and whose schema has ``name`` as a key.
    """
    siblings = list(mapping)
    properties: dict[str, Any] = schema.get("properties", {})
    for sibling in reversed(siblings[:siblings.index(name)]):
        child = properties.get(sibling)
        value = mapping[sibling]
        if isinstance(value, list) and isinstance(child, dict):
            child, value = child.get("items"), (value[-1] if value else None)
        if (value is None or isinstance(value, dict)) and name in _keys_of(child):
            return sibling
    return None


class _Mapper:
    """Turns jsonschema errors into problems located in one loaded file."""

    def __init__(self, root: MDict, file: str, skip: set[KeyPath]) -> None:
        self.root = root
        self.file = file
        self.skip = skip
        self.problems: list[Problem] = []
        self.paths: set[KeyPath] = set()
        self.seen: set[tuple[KeyPath, str]] = set()

    def add(self, path: KeyPath, message: str, *, key: bool = False) -> None:
        if (path, message) in self.seen:
            return  # jsonschema repeats some errors (one `required` error per missing key)
        self.seen.add((path, message))
        self.paths.add(path)
        line, column = locate(self.root, path, key=key)
        self.problems.append(Problem(Location(self.file, line, column), format_path(path),
                                     message))

    def error(self, error: ValidationError) -> None:
        path: KeyPath = tuple(error.absolute_path)
        if path in self.skip:
            return  # a key-looking secret: reported by the secrets check, never echoed
        validator = error.validator
        schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
        value = error.instance
        if "propertyNames" in error.absolute_schema_path:
            self.property_name(path, error)
        elif validator == "additionalProperties":
            self.unknown_keys(path, value, schema)
        elif validator == "required":
            names: Any = error.validator_value
            for name in names:
                if isinstance(value, dict) and name not in value:
                    hints = _ACCOUNT_HINTS if path[:2] == ("api", "accounts") else {}
                    hint = hints.get(name) or _REQUIRED_HINTS.get(name, "add it")
                    self.add(path, f"missing required key '{name}'; {hint}")
        elif validator in ("anyOf", "oneOf"):
            self.any_of(path, error, schema)
        else:
            self.add(path, self.message(error, schema, value))

    def property_name(self, path: KeyPath, error: ValidationError) -> None:
        name = str(error.instance)
        where = (*path, name)
        if error.validator == "enum":
            options: Any = error.validator_value
            choices = [str(c) for c in options]
            self.add(where, f"unknown key '{name}'{did_you_mean(name, choices)}; allowed: "
                            f"{', '.join(choices)}", key=True)
        else:
            hint = error.schema.get("patternErrorMessage") if isinstance(error.schema,
                                                                         dict) else None
            self.add(where, f"'{name}' is not a valid name: {hint or error.message}", key=True)

    def unknown_keys(self, path: KeyPath, value: Any, schema: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            return
        known = list(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        for name in value:
            if name in known or any(p.search(name) for p in patterns):
                continue
            where = (*path, name)
            if path[:1] == ("api",) and name.lower() in KEY_FIELD_NAMES:
                self.add(where, key_field_message(name, key_env(self.root)), key=True)
                continue
            parent = _lost_indentation(name, value, schema)
            if parent is not None:
                self.add(where, f"unknown key '{name}' at this indentation; '{name}' is a key "
                                f"of '{parent}': did you mean to indent it under '{parent}'?",
                         key=True)
                continue
            hint = did_you_mean(name, known)
            if not hint:
                hint = f"; allowed here: {', '.join(known)}" if known else ""
            self.add(where, f"unknown key '{name}'{hint}", key=True)

    def any_of(self, path: KeyPath, error: ValidationError, schema: dict[str, Any]) -> None:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context or ():
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        best = max(branches.values(), key=_branch_rank, default=[])
        if best and _branch_rank(best) > 0:
            for sub in best:
                self.error(sub)
            return
        self.add(path, f"expected {_alternatives(schema)}, got {kind(error.instance)} "
                       f"{show(error.instance)}")

    def message(self, error: ValidationError, schema: dict[str, Any], value: Any) -> str:
        validator = error.validator
        limit: Any = error.validator_value
        if validator == "type":
            got = kind(value)
            if isinstance(value, (bool, int, float, str)) and value is not None:
                got = f"{got} {show(value)}"
            hint = ""
            if "string" in str(limit) and isinstance(value, (int, float)):
                hint = "; put it in quotes to make it a string"
            return f"expected {_words(limit)}, got {got}{hint}"
        if validator == "enum":
            choices = [c for c in limit if isinstance(c, str)]
            return (f"{show(value)} is not one of {', '.join(show(c) for c in limit)}"
                    f"{did_you_mean(str(value), choices)}")
        if validator == "const":
            return f"{show(value)} is not supported: use {show(limit)}"
        if validator == "maximum":
            return f"{value} is more than {limit} {_range(schema)}"
        if validator == "minimum":
            return f"{value} is less than {limit} {_range(schema)}"
        if validator == "exclusiveMinimum":
            return f"{value} must be more than {limit}"
        if validator == "minLength":
            return "is empty; write a value or remove the key"
        if validator == "maxLength":
            return f"is {len(value)} characters, more than {limit}; shorten it"
        if validator == "pattern":
            hint = schema.get("patternErrorMessage") or f"it must match {limit}"
            return f"{show(value)} is not valid: {hint}"
        if validator == "minItems":
            return f"is an empty list; give at least {limit} item" + ("s" if limit > 1 else "")
        if validator == "maxItems":
            return f"has {len(value)} items, more than {limit}; remove some"
        if validator == "uniqueItems":
            return "lists the same item twice; remove the repeat"
        if validator == "minProperties":
            return "is empty; give at least one key or remove it"
        return error.message[:200]


def check(root: MDict, file: str,
          skip: Iterable[KeyPath] = ()) -> tuple[list[Problem], set[KeyPath]]:
    """Every schema problem of ``root``, located, and the key paths they are about.

    Paths in ``skip`` (key-looking secrets, reported elsewhere) are not reported.
    """
    if fast_check()(root):
        return [], set()
    mapper = _Mapper(root, file, set(skip))
    for error in validator().iter_errors(root):
        mapper.error(error)
    return mapper.problems, mapper.paths
