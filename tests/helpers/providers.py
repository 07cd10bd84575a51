"""The three providers and the credentials each needs, for tests that run on all of them.

Moved from ``tests.providers.test_run`` so that no test module imports another."""

from __future__ import annotations

from pathlib import Path

import pytest

ACCESS = "AKshotrunRUNaccess000111"


SECRET = "SKshotrunRUNsecret000222-never-written"


FAL_KEY = "fal-RUN-key-000333:feedface"


JWT_HEADER = "eyJhbGciOiJIUzI1NiIs"  # base64 of {"alg":"HS256",...: the start of any token


PROVIDERS = ("fal", "kling")


def keys(monkeypatch: pytest.MonkeyPatch, provider: str, *, wrong: bool = False) -> str:
    """Set the provider's variables; return the key the emulator expects."""
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    expected = SECRET if provider == "kling" else FAL_KEY
    given = "wrong-" + expected if wrong else expected
    if provider == "kling":
        monkeypatch.setenv("KLING_ACCESS_KEY", ACCESS)
        monkeypatch.setenv("KLING_SECRET_KEY", given)
    else:
        monkeypatch.setenv("FAL_KEY", given)
    return expected


def written_text(root: Path) -> str:
    """Every file a run wrote (store, log, sidecars, report...), as text."""
    return "\n".join(path.read_bytes().decode("utf-8", "replace")
                     for path in root.rglob("*") if path.is_file()
                     and path.suffix not in (".mp4", ".png", ".jpg"))
