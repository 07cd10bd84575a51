"""Bulk work on tens of thousands of small objects, with the cyclic garbage collector paused.

Loading a 20,000-take manifest, reading 20,000 records or building 20,000 trace records
creates hundreds of thousands of objects and frees none of them. Every 700 allocations the
collector runs, and every so often it rescans *everything* alive: with a big manifest in
memory, that made reading the store two to three times slower than the reading itself.
None of these objects form reference cycles that need the collector, so it is paused for
the duration and resumed (as it was) afterwards; memory freed by reference counting is
freed as usual.

A ``shotrun`` process keeps what it built in bulk until it exits, so its entry point marks
it (:func:`mark_command_process`) and such objects are then moved out of the collector's
sight when the block ends (``gc.freeze``): otherwise the next collections would still walk
all of them once per generation. The same mark lets it use the manifest cache
(:mod:`runner.manifest.cache`). Library callers (tests, benchmarks, other programs) are left
as they are.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_command = False


def mark_command_process(enabled: bool = True) -> None:
    """This process runs one shotrun command, then exits (the console entry point says so)."""
    global _command
    _command = enabled


def is_command_process() -> bool:
    """True in a process marked by :func:`mark_command_process`."""
    return _command


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (nesting is fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if _command:
                gc.freeze()
            gc.enable()
