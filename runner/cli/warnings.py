"""A manifest's warnings, in full once, then one line while the file stays the same.

``validate`` is asked for them and always prints them in full. ``plan`` and ``run`` print
them in full the first time a command meets them, and afterwards, while the file gives the
same warnings, one line saying how many there are and which command lists them again: a user who
runs ``validate``, ``plan`` and ``run`` on a ``--provider kling`` manifest read the same
three warnings three times on every round, and learnt to skip them (including a new one).

"The same" is the manifest's absolute path and the exact text of its warnings (which carry
file:line:column): editing the file so that a warning appears, moves or changes prints them
all in full again. What was shown is remembered per user, as empty marker files named by
that digest under ``$XDG_CACHE_HOME/shotrun/warned/`` (at most :data:`MAX_MARKERS`): nothing
is written next to the manifest or into its output folder, and a marker that cannot be
written only means the warnings are printed in full again next time.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from runner.core.errors import Problem
from runner.core.fsutil import user_cache_dir
from runner.core.redact import redact
from runner.core.words import count

MAX_MARKERS = 256


def _folder() -> Path:
    return user_cache_dir() / "warned"


def _digest(manifest: Path | str, warnings: Sequence[Problem]) -> str:
    text = "\n".join([str(Path(manifest).resolve()), *sorted(str(w) for w in warnings)])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def seen(manifest: Path | str, warnings: Sequence[Problem]) -> bool:
    """True when these very warnings of this file were printed in full before."""
    return bool(warnings) and (_folder() / _digest(manifest, warnings)).exists()


def remember(manifest: Path | str, warnings: Sequence[Problem]) -> None:
    """Note that these warnings were printed in full (best effort: never fails a command)."""
    if not warnings:
        return
    folder = _folder()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker = folder / _digest(manifest, warnings)
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
        os.utime(marker)  # the newest are kept
        markers = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
        for old in markers[:-MAX_MARKERS]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def warning_lines(manifest: Path | str, warnings: Sequence[Problem],
                  provider: str | None = None) -> list[str]:
    """The lines ``plan`` and ``run`` print about the manifest's warnings (redacted).

    In full when they are new for this file, else one line naming the command (which sends
    nothing) that lists them again. Printing them in full is remembered.
    """
    if not warnings:
        return []
    if not seen(manifest, warnings):
        remember(manifest, warnings)
        return [redact(str(w)) for w in warnings]
    shown = warnings[0].location.file  # the path as the user wrote it
    again = f"shotrun validate {shlex.quote(shown)}"
    if provider is not None:
        again += f" --provider {shlex.quote(provider)}"
    return [redact(f"{shown}: the same {count(len(warnings), 'warning')} as shown before; "
                   f"`{again}` lists them again (it sends nothing)")]
