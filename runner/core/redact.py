"""Keeps secrets (the API key) out of every text shotrun writes.

Secrets are registered once, when the key is read from the environment; every log line,
exception message, sidecar and report passes through :func:`redact` on its way out. A secret
is also found percent-encoded, as it stands in a URL a provider returned (``?key=...``).

Text shotrun did not write (a library's exception, a server's body) is also cut to a
quotation (:func:`clip`), and what is kept or shown of a message to a few hundred characters
(:func:`bounded`): no line printed or stored grows with what a server sends.

Everything written passes through here (a run redacts tens of thousands of values), so the
common cases are short: a number, ``None`` or a bool cannot hold a secret and is returned
without a look, and the secrets are kept as a tuple (longest first, so a secret that contains
another is replaced whole).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
#: The most of one text quoted from a library or a server (an exception's message, an error
#: body) that a message carries: once, a library's message carried a whole 55 KB video body
#: into the summary, the log and the store.
QUOTE_LIMIT = 300
#: The most of one whole message (which may quote several texts) that is stored or shown.
MESSAGE_LIMIT = 800
_secrets: set[str] = set()
_needles: tuple[str, ...] = ()  # the secrets, longest first
_json_needles: tuple[str, ...] = ()  # and, before them, each as JSON writes it in a string
_PLAIN = frozenset({int, float, bool, type(None)})  # exact types: no text inside


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret (ignored when empty or too short to be a key)."""
    if value and len(value) >= 4:
        _secrets.add(value)
        _refresh()


def forget_secrets() -> None:
    """Forget every registered secret (for tests)."""
    _secrets.clear()
    _refresh()


def _refresh() -> None:
    global _needles, _json_needles
    # A secret inside a URL a provider returned (``?key=...``) may be percent-encoded there.
    forms = _secrets | {encoded for secret in _secrets
                        for encoded in (quote(secret, safe=""), quote_plus(secret, safe=""))}
    _needles = tuple(sorted(forms, key=len, reverse=True))
    # ``json.dumps`` (ASCII only, the default) writes a quote, a backslash, a control or a
    # non-ASCII character of a string as an escape: a secret holding one is not found in a
    # JSON text as it is, only as its escaped form.
    escaped = (json.dumps(secret)[1:-1] for secret in _needles)
    _json_needles = tuple(e for e in escaped if e not in _secrets) + _needles


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[REDACTED]``."""
    for secret in _needles:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out.

    For text shotrun does not write itself (a library's exception message, a server's body):
    whatever it holds, a message quoting it stays a few hundred characters long.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def bounded(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` redacted, then clipped (in that order: a secret cut in two would survive)."""
    return clip(redact(text), limit)


def redact_json(text: str) -> str:
    """:func:`redact` for a text made by ``json.dumps``: escaped forms of secrets go too."""
    for secret in _json_needles:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: Any) -> Any:
    """Redact strings inside nested dicts, lists and tuples; other values as they are.

    Containers are always copied (callers may change what they get back).
    """
    kind = type(value)
    if kind is str:
        for secret in _needles:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if kind in _PLAIN:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                for secret in _needles:
                    if secret in item:
                        item = item.replace(secret, REDACTED)
            elif kind not in _PLAIN:
                item = redact_value(item)
            if type(key) is str:
                for secret in _needles:
                    if secret in key:
                        key = key.replace(secret, REDACTED)
            else:
                key = redact_value(key)
            out[key] = item
        return out
    if isinstance(value, str):  # a str subclass (an enum member): its text
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value

