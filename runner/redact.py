"""Keeps secrets (the API key) out of every text shotrun writes.

Secrets are registered once, when the key is read from the environment; every log line,
exception message, sidecar and report passes through :func:`redact` on its way out.
"""

from __future__ import annotations

from typing import Any

REDACTED = "[REDACTED]"
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret (ignored when empty or too short to be a key)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def forget_secrets() -> None:
    """Forget every registered secret (for tests)."""
    _secrets.clear()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[REDACTED]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: Any) -> Any:
    """Redact strings inside nested dicts, lists and tuples; other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value
