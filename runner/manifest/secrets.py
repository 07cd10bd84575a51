"""Keeping API keys and database passwords out of manifests.

A manifest lives in git; a key written into it leaks with the first push. Under ``api`` a
value that looks like a key, or a key-named field (``api_key``, ``token``...), is refused
with a message saying which environment variable to use instead. A ``state.url`` holding a
password is refused the same way, pointing at libpq's own places for it. Messages never
repeat the value, and a refused value is registered with :mod:`runner.core.redact` so that
nothing printed later can show it either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from runner.core.errors import Location, Problem
from runner.core.redact import register_secret
from runner.core.storeurl import ENV_STORE_URL, url_passwords
from runner.manifest.nodes import KeyPath, MDict, MList, format_path, locate

DEFAULT_KEY_ENV = "SHOTRUN_API_KEY"
KEY_FIELD_NAMES = frozenset(
    {"api_key", "apikey", "key", "token", "secret", "password", "authorization", "bearer",
     "access_token", "auth", "api_token", "secret_key"}
)
_PREFIXED = re.compile(r"^(sk|pk|rk|ak|key|api|tok|token)[-_]", re.I)
_BEARER = re.compile(r"^(bearer|basic|token)\s+\S{8,}$", re.I)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_URL_SECRET = re.compile(r"://[^/@\s]+:[^/@\s]+@|[?&](api[_-]?key|key|token|access_token|"
                         r"secret|auth)=[^&\s]{6,}", re.I)
_RUN = re.compile(r"[A-Za-z0-9]+")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
STORE_URL_PATH: KeyPath = ("state", "url")
STORE_PASSWORD_MESSAGE = (
    "the URL holds a password, and the manifest lives in git: write it without the password "
    "(postgresql://user@host/dbname) and give the password through PGPASSWORD or ~/.pgpass "
    f"(libpq's standard ways), or set the whole URL in {ENV_STORE_URL} instead")


def looks_like_secret(value: str) -> bool:
    """True for strings shaped like an API key or a credential.

    Keys are long runs of mixed letters and digits (``sk-...``, hex, base62), UUIDs, bearer
    strings, or URLs carrying a password or a ``key=`` parameter. Model names, URLs, words and
    environment variable names are not: ``kling-o3-reference-to-video`` is words and hyphens,
    its longest run of letters and digits is short.
    """
    text = value.strip()
    if len(text) < 12:
        return False
    if _BEARER.match(text):
        return True
    if "://" in text:
        return _URL_SECRET.search(text) is not None
    if any(c.isspace() for c in text) or _ENV_NAME.match(text):
        return False
    if _UUID.match(text):
        return True
    longest = max(_RUN.findall(text), key=len, default="")
    has_digit = any(c.isdigit() for c in longest)
    if _PREFIXED.match(text) and len(longest) >= 12 and has_digit:
        return True
    mixed = any(c.isalpha() for c in longest) and has_digit
    return len(longest) >= 20 and mixed


def key_env(root: MDict) -> str:
    """The variable the key should live in: ``api.api_key_env`` when usable, else the default."""
    api = root.get("api")
    name = api.get("api_key_env") if isinstance(api, MDict) else None
    if isinstance(name, str) and _ENV_NAME.match(name) and not looks_like_secret(name):
        return name
    return DEFAULT_KEY_ENV


def use_env_message(env: str) -> str:
    """What to do instead of writing a key into the manifest."""
    return (f"this looks like an API key; never put the key in the manifest: export it as "
            f"the environment variable {env} (the name given by api.api_key_env)")


def key_field_message(field: str, env: str) -> str:
    """The message for a key-named field such as ``api.api_key``."""
    return (f"'{field}' would hold the API key; keys never go in the manifest: export the key "
            f"as the environment variable {env} and set api.api_key_env: {env}")


def _walk(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, MDict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, MList):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))


def secret_paths(root: MDict) -> set[KeyPath]:
    """Paths under ``api`` whose value looks like a key, and ``state.url`` when it holds a
    password (the secrets they hold are registered)."""
    found: set[KeyPath] = set()
    api = root.get("api")
    if isinstance(api, MDict):
        for path, text in _walk(api, ("api",)):
            if looks_like_secret(text):
                register_secret(text.strip())
                found.add(path)
    state = root.get("state")
    url = state.get("url") if isinstance(state, MDict) else None
    if isinstance(url, str):
        passwords = url_passwords(url)
        for password in passwords:
            register_secret(password)
        if passwords:
            found.add(STORE_URL_PATH)
    return found


def check_secrets(root: MDict, file: str, paths: set[KeyPath]) -> list[Problem]:
    """One problem per key-looking value under ``api`` (from :func:`secret_paths`)."""
    env = key_env(root)
    problems = []
    for path in sorted(paths, key=lambda p: locate(root, p)):
        line, column = locate(root, path)
        message = STORE_PASSWORD_MESSAGE if path == STORE_URL_PATH else use_env_message(env)
        problems.append(Problem(Location(file, line, column), format_path(path), message))
    return problems
