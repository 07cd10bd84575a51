"""Where the state store lives: the URL of a shared PostgreSQL store, chosen and shown safely.

A team puts its store in PostgreSQL (issue 24); one person keeps today's SQLite file in the
output folder. The URL comes from three places, in the project's usual precedence (flag,
environment, manifest): ``--store URL``, ``SHOTRUN_STORE_URL``, ``state.url``. An empty
string at one level means "not set here", so ``SHOTRUN_STORE_URL=`` in a shell falls through
to the manifest, and nothing set anywhere means the embedded SQLite file.

Only libpq connection URIs are accepted (``postgresql://`` or ``postgres://``): a URL of
another database or a file path given by mistake is a one-line usage error naming where it
came from, before anything is opened.

A password may stand in the URL (``postgresql://user:secret@host/db`` or
``?password=secret``); every message that shows a URL shows :func:`redact_url` of it. The
manifest refuses one outright (it lives in git): see :mod:`runner.manifest.secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from runner.core.errors import UsageError

ENV_STORE_URL = "SHOTRUN_STORE_URL"
STORE_FLAG = "--store"
MANIFEST_SETTING = "state.url"
SCHEMES = ("postgresql://", "postgres://")  # libpq's two URI designators (case-sensitive)
MASK = "***"
#: Query parameters of a libpq URI that hold a secret (the SSL key's passphrase is one too).
SECRET_PARAMS = frozenset({"password", "sslpassword"})


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A store URL and where it was given: ``--store``, ``SHOTRUN_STORE_URL`` or
    ``state.url`` (what a message about it names)."""

    url: str
    source: str


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` is a libpq connection URI (``postgresql://`` or ``postgres://``)."""
    return url.startswith(SCHEMES)


def _after_scheme(url: str) -> int:
    """Where the part after ``scheme://`` starts (0 when there is no ``://``)."""
    mark = url.find("://")
    return mark + 3 if mark >= 0 else 0


def _query_secrets(url: str, query_at: int) -> list[tuple[int, int]]:
    """The (start, end) spans in ``url`` of the values of secret parameters, for a query
    that starts after the ``?`` at ``query_at`` and runs to the end (libpq knows no
    ``#fragment``)."""
    spans = []
    position = query_at + 1
    for part in url[query_at + 1:].split("&"):
        name, equals, _ = part.partition("=")
        if equals and unquote(name).strip().lower() in SECRET_PARAMS:
            spans.append((position + len(name) + 1, position + len(part)))
        position += len(part) + 1
    return spans


def _user_info_end(url: str, start: int) -> int:
    """Where libpq's user info ends: the first ``@`` before any ``/`` (-1: none)."""
    end = start
    while end < len(url) and url[end] not in "@/":
        end += 1
    return end if end < len(url) and url[end] == "@" else -1


def _password_span(url: str, start: int, at: int) -> tuple[int, int] | None:
    """The span of the password in the user info ``url[start:at]`` (None: there is none)."""
    colon = url.find(":", start, at)
    return (colon + 1, at) if colon >= 0 and colon + 1 < at else None


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """The non-empty, non-overlapping (start, end) spans of ``url`` that hold a password,
    in order.

    They err on the side of hiding: besides where libpq reads passwords (the user info up
    to the first ``@`` before any ``/``; ``password=`` and ``sslpassword=`` in the query
    after it), they cover what a person may have meant as one: a user-info password holding
    an unescaped ``@``, ``/`` or ``?`` (up to the *last* ``@``) and a ``password=`` after
    the first ``?`` anywhere. An ``@`` in the query may then hide more than the password,
    never less.
    """
    start = _after_scheme(url)
    spans: list[tuple[int, int]] = []
    for at in {_user_info_end(url, start), url.rfind("@", start)}:
        if at >= 0:
            span = _password_span(url, start, at)
            if span is not None:
                spans.append(span)
        query_at = url.find("?", max(at, start))
        if query_at >= 0:
            spans.extend(_query_secrets(url, query_at))
    merged: list[tuple[int, int]] = []
    for low, high in sorted(span for span in spans if span[1] > span[0]):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def url_passwords(url: str) -> list[str]:
    """The passwords ``url`` may carry (see :func:`_secret_spans`), as written and decoded:
    what to register with :func:`runner.core.redact.register_secret`."""
    found: list[str] = []
    for low, high in _secret_spans(url):
        found.extend(dict.fromkeys((url[low:high], unquote(url[low:high]))))
    return found


def has_password(url: str) -> bool:
    """Whether ``url`` holds (or may hold) a password: :func:`redact_url` would hide
    something."""
    return bool(_secret_spans(url))


def redact_url(url: str) -> str:
    """``url`` with every password (see :func:`_secret_spans`) replaced by ``***``, for
    messages and logs."""
    pieces = []
    shown = 0
    for low, high in _secret_spans(url):
        pieces.append(url[shown:low])
        pieces.append(MASK)
        shown = high
    pieces.append(url[shown:])
    return "".join(pieces)


def choose_store_url(flag: str | None, environ: Mapping[str, str],
                     manifest_url: str | None) -> StoreUrl | None:
    """The store URL that applies and where it came from: ``--store``, else
    ``SHOTRUN_STORE_URL``, else the manifest's ``state.url``; None for the embedded SQLite
    file. An empty (or blank) value at one level counts as not set there."""
    for value, source in ((flag, STORE_FLAG), (environ.get(ENV_STORE_URL), ENV_STORE_URL),
                          (manifest_url, MANIFEST_SETTING)):
        if value is not None and value.strip():
            return StoreUrl(value.strip(), source)
    return None


def check_store_url(choice: StoreUrl) -> str:
    """``choice.url`` when it is a PostgreSQL URL; otherwise a :class:`UsageError` (exit 2)
    naming where it was given, the URL shown without its password."""
    if is_postgres_url(choice.url):
        return choice.url
    raise UsageError(
        f"{choice.source}: {redact_url(choice.url)!r} is not a PostgreSQL URL: give "
        "postgresql://USER@HOST[:PORT]/DBNAME (the password in PGPASSWORD or ~/.pgpass), "
        f"or leave {choice.source} unset to keep the embedded SQLite store")


def store_url(flag: str | None, environ: Mapping[str, str],
              manifest_url: str | None) -> str | None:
    """The checked store URL (:func:`choose_store_url` then :func:`check_store_url`), or
    None for the embedded SQLite file."""
    choice = choose_store_url(flag, environ, manifest_url)
    return check_store_url(choice) if choice is not None else None
