"""Bulk work on tens of thousands of small objects, with the cyclic garbage collector paused.

Loading a 20,000-take manifest, reading 20,000 records or building 20,000 trace records
creates hundreds of thousands of objects and frees none of them. Every 700 allocations the
collector runs, and every so often it rescans *everything* alive: with a big manifest in
memory, that made reading the store two to three times slower than the reading itself.
None of these objects form reference cycles that need the collector, so it is paused for
the duration and resumed (as it was) afterwards; memory freed by reference counting is
freed as usual.

A ``shotrun`` process keeps what it built in bulk until it exits, so its entry point also
asks (:func:`freeze_after_bulk`) that such objects be moved out of the collector's sight
when the block ends (``gc.freeze``): otherwise the next collections would still walk all of
them once per generation. Library callers (tests, other programs) are left as they are.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_freeze = False


def freeze_after_bulk(enabled: bool = True) -> None:
    """In this process, freeze what exists at the end of each bulk block (see above)."""
    global _freeze
    _freeze = enabled


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (nesting is fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if _freeze:
                gc.freeze()
            gc.enable()
