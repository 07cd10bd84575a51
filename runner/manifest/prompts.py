"""Prompt text: ``${var}`` substitution, then ``@name`` reference rewriting.

The gateway only understands positions (``@Image1``, ``@Element2``); people think in names
(``@coast``, ``@hero``). A name is rewritten to its position *in this shot's lists*, so the
same ``@hero`` may be ``@Element1`` in one shot and ``@Element2`` in another. A declared name
that the shot does not attach is an error (the model would get a reference to nothing); any
other ``@word`` (an e-mail-ish handle, "@ noon") is left alone with a warning, because it might
be meant literally.

Variables are substituted first, so a variable may itself contain ``@names``. ``$${x}`` is a
literal ``${x}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runner.core.model import MAX_PROMPT_CHARS
from runner.manifest.context import Context
from runner.manifest.nodes import KeyPath, did_you_mean

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?")
_REF = re.compile(r"(?<![\w@])@([A-Za-z][A-Za-z0-9_]*)")
_POSITION = re.compile(r"^(Image|Element)([0-9]+)$")


@dataclass(frozen=True, slots=True)
class Attached:
    """What a shot attaches, for rewriting: names by position (None for unnamed entries)."""

    images: Sequence[str | None]
    elements: Sequence[str | None]
    declared_assets: Mapping[str, object]
    declared_elements: Mapping[str, object]


def substitute(text: str, variables: Mapping[str, str], ctx: Context, path: KeyPath,
               used: set[str]) -> tuple[str, bool]:
    """``text`` with ``${name}`` replaced, and whether a reference failed (reported).

    A failed reference is left as written, so that the rest of the prompt is still checked.
    """
    if "$" not in text:
        return text, False
    failed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal failed
        whole = match.group(0)
        if whole == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            failed = True
            ctx.error(path, f"{whole!r} is not a valid variable reference; write ${{name}} "
                            "(letters, digits, _), or $${ for a literal ${")
            return whole
        if name not in variables:
            failed = True
            hint = did_you_mean(name, variables)
            ctx.error(path, f"undefined variable ${{{name}}}{hint}; define it under vars:")
            return whole
        used.add(name)
        return variables[name]

    result = _VAR.sub(replace, text)
    return result, failed


def rewrite(text: str, attached: Attached, ctx: Context, path: KeyPath) -> tuple[str, bool]:
    """``text`` with ``@name`` rewritten to positions, and whether a reference was bad."""
    if "@" not in text:
        return text, False
    failed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal failed
        name = match.group(1)
        position = _POSITION.match(name)
        if position is not None:
            kind, number = position.group(1), int(position.group(2))
            listed = attached.images if kind == "Image" else attached.elements
            if not 1 <= number <= len(listed):
                failed = True
                what = "images" if kind == "Image" else "elements"
                have = (f"it has {len(listed)}" if listed else f"it has no {what}")
                ctx.error(path, f"@{name} points outside the shot's {what} ({have}); "
                                f"add to {what}: or fix the number")
            return match.group(0)
        if name in attached.images:
            return f"@Image{attached.images.index(name) + 1}"
        if name in attached.elements:
            return f"@Element{attached.elements.index(name) + 1}"
        if name in attached.declared_assets:
            failed = True
            ctx.error(path, f"@{name} is a declared asset but this shot does not attach it; "
                            f"add {name} to the shot's images: (or remove @{name})")
            return match.group(0)
        if name in attached.declared_elements:
            failed = True
            ctx.error(path, f"@{name} is a declared element but this shot does not attach it; "
                            f"add {name} to the shot's elements: (or remove @{name})")
            return match.group(0)
        names = [*attached.declared_assets, *attached.declared_elements]
        hint = did_you_mean(name, names)
        ctx.warn(path, f"@{name} is not an asset or element name; it is sent as written{hint}")
        return match.group(0)

    result = _REF.sub(replace, text)
    return result, failed


def finish(text: str, variables: Mapping[str, str], attached: Attached, ctx: Context,
           path: KeyPath, used: set[str]) -> str | None:
    """Substitute, rewrite and check the length of one prompt; None when it has a problem.

    Every check runs even after one failed, so that all of a prompt's problems (an undefined
    variable and a stray ``@word`` and its length) are reported together, not one per edit.
    """
    substituted, bad_variable = substitute(text, variables, ctx, path, used)
    result, bad_reference = rewrite(substituted, attached, ctx, path)
    failed = bad_variable or bad_reference
    if not result.strip():
        ctx.error(path, "the prompt is empty after substitution; write what the shot shows")
        return None
    if len(result) > MAX_PROMPT_CHARS:
        ctx.error(path, f"the prompt is {len(result)} characters after substitution and "
                        f"rewriting, more than {MAX_PROMPT_CHARS}; shorten it")
        return None
    return None if failed else result
