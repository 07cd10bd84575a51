"""Seeing what a test's code flushes to disk: durability is observed, not assumed."""

from __future__ import annotations

import os

import pytest


def record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of what ``os.fsync`` flushes from now on, in order (the flushes still happen).

    Linux only: a descriptor is named through ``/proc/self/fd``.
    """
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", fsync)
    return seen
