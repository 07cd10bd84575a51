"""Which URLs shotrun will talk to, and which of them may see the API key.

Only ``http`` and ``https`` are followed: a URL handed back by the gateway (a result link, an
uploaded file's URL) that names ``file:``, ``ftp:`` or anything else is refused before any
connection is made. The bearer key goes only to the origins the user configured (gateway and
file service), never to a CDN that serves result links; aiohttp also drops it on a redirect to
another origin.
"""

from __future__ import annotations

from yarl import URL

ALLOWED_SCHEMES = frozenset({"http", "https"})


def checked_url(url: str, *, what: str) -> URL:
    """``url`` parsed, or ValueError naming ``what`` when it is not an absolute http(s) URL."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not a valid URL ({exc})") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        shown = parsed.scheme or "no scheme"
        raise ValueError(f"{what} must be an http or https URL, not {shown}")
    if not parsed.host:
        raise ValueError(f"{what} has no host")
    if parsed.user or parsed.password:
        raise ValueError(f"{what} must not carry credentials")
    return parsed


def join(base: URL, path: str) -> URL:
    """``base`` with ``path`` (already percent-encoded) appended to its path."""
    return base.with_path(base.raw_path.rstrip("/") + path, encoded=True)


def safe_url_text(url: URL | str) -> str:
    """A URL for messages and logs: no query string (signed links carry tokens there)."""
    parsed = URL(url) if isinstance(url, str) else url
    return str(parsed.with_query(None).with_fragment(None))
