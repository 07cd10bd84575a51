"""A compiled yes/no check of the manifest schema: the fast path of pass 1.

jsonschema walks its validator machinery for every keyword of every shot, about 90 µs a shot;
a 10,000-shot manifest would spend a second there. Nearly every manifest checked is valid, so
pass 1 first asks this compiled check (plain closures, about ten times faster) and only when it
says "invalid" runs jsonschema, whose detailed errors become the messages.

It compiles the subset of JSON Schema the manifest schema uses and *refuses* any keyword it does
not know, so the schema cannot grow a rule that this check would silently ignore. The tests hold
it to jsonschema's verdict on random manifests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_IGNORED = frozenset({"description", "default", "title", "$schema", "$id", "patternErrorMessage",
                      "examples", "$comment"})
_KNOWN = frozenset({"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
                    "minLength", "maxLength", "pattern", "properties", "patternProperties",
                    "additionalProperties", "required", "items", "minItems", "maxItems",
                    "uniqueItems", "minProperties", "anyOf", "propertyNames"}) | _IGNORED


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _same(a: Any, b: Any) -> bool:
    """JSON Schema equality: ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _type_check(types: Any) -> Check:
    checks = [_TYPES[t] for t in ([types] if isinstance(types, str) else types)]
    if len(checks) == 1:
        return checks[0]
    return lambda v: any(check(v) for check in checks)


def _object_checks(schema: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    props = {k: compile_schema(v) for k, v in schema.get("properties", {}).items()}
    patterns = [(re.compile(p), compile_schema(s))
                for p, s in schema.get("patternProperties", {}).items()]
    additional = schema.get("additionalProperties", True)
    extra: Check | None = None
    if additional is False:
        extra = lambda v: False  # noqa: E731 - a check that refuses any value
    elif isinstance(additional, dict):
        extra = compile_schema(additional)
    names = compile_schema(schema["propertyNames"]) if "propertyNames" in schema else None
    required = tuple(schema.get("required", ()))
    min_props = schema.get("minProperties")

    def check_object(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key in required:
            if key not in value:
                return False
        if min_props is not None and len(value) < min_props:
            return False
        for key, item in value.items():
            if names is not None and not names(key):
                return False
            sub = props.get(key)
            if sub is not None:
                if not sub(item):
                    return False
                continue
            matched = False
            for pattern, pattern_check in patterns:
                if pattern.search(key):
                    matched = True
                    if not pattern_check(item):
                        return False
            if not matched and extra is not None and not extra(item):
                return False
        return True

    checks.append(check_object)
    return checks


def _array_checks(schema: dict[str, Any]) -> list[Check]:
    items = compile_schema(schema["items"]) if "items" in schema else None
    low, high = schema.get("minItems"), schema.get("maxItems")
    unique = schema.get("uniqueItems", False)

    def check_array(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        if low is not None and len(value) < low:
            return False
        if high is not None and len(value) > high:
            return False
        if unique:
            for i, a in enumerate(value):
                if any(_same(a, b) for b in value[i + 1:]):
                    return False
        return items is None or all(items(item) for item in value)

    return [check_array]


def _scalar_checks(schema: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if "enum" in schema:
        options = list(schema["enum"])
        checks.append(lambda v: any(_same(v, o) for o in options))
    if "const" in schema:
        const = schema["const"]
        checks.append(lambda v: _same(v, const))
    low_bound, high_bound = schema.get("minimum"), schema.get("maximum")
    above = schema.get("exclusiveMinimum")
    if low_bound is not None:
        checks.append(lambda v: not _is_number(v) or v >= low_bound)
    if high_bound is not None:
        checks.append(lambda v: not _is_number(v) or v <= high_bound)
    if above is not None:
        checks.append(lambda v: not _is_number(v) or v > above)
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None:
        checks.append(lambda v: not isinstance(v, str) or len(v) >= low)
    if high is not None:
        checks.append(lambda v: not isinstance(v, str) or len(v) <= high)
    if "pattern" in schema:
        search = re.compile(schema["pattern"]).search
        checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
    return checks


def compile_schema(schema: Any) -> Check:
    """A function telling whether a value is valid against the (dereferenced) ``schema``."""
    if schema is True or schema == {}:
        return lambda v: True
    if schema is False:
        return lambda v: False
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"fastcheck does not know schema keywords {sorted(unknown)}")
    checks: list[Check] = []
    if "type" in schema:
        checks.append(_type_check(schema["type"]))
    checks.extend(_scalar_checks(schema))
    if any(k in schema for k in ("properties", "patternProperties", "additionalProperties",
                                 "required", "propertyNames", "minProperties")):
        checks.extend(_object_checks(schema))
    if any(k in schema for k in ("items", "minItems", "maxItems", "uniqueItems")):
        checks.extend(_array_checks(schema))
    if "anyOf" in schema:
        branches = [compile_schema(b) for b in schema["anyOf"]]
        checks.append(lambda v: any(branch(v) for branch in branches))
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)
