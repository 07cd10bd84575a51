"""state: The durable state store: what every take of a manifest is doing, across runs and crashes.

Everything above this package types its store as :class:`Store` (:mod:`runner.state.protocol`):
what a run and the reading commands ask of a store, nothing of SQLite. :class:`StateStore` is
the SQLite one described here.

One SQLite file per manifest (:func:`store_path_for`), written by exactly one run at a time
and read by ``shotrun status`` beside it. The rule that makes resume safe: **every transition
is committed before the next step acts on it** - the intent to submit before the creation
request is sent, the task id the moment it arrives.

Life cycle of a take (``TakeStatus``; only the scheduler moves a take, one store call each)::

                 sync(): new take / fingerprint changed (old record -> take_history)
                                   |
                                   v
     reset_for_retry() -------->  new  <------------------- mark_not_sent()
     (failed/ambiguous/held/           |  mark_submitting()       (never reached the gateway)
      submitted/completed)             v
                              +-- submitting --------------+
          mark_ambiguous()    |        |  mark_submitted(task_id)
          (or found by sync() |        v
           after a crash)     |    submitted --(mark_progress, record_poll)--+
                              v        |  mark_completed(url)  <-------------+
                          ambiguous    v
                  mark_held() |    completed <----------- mark_completed() (refreshed link)
                              v        |  mark_downloading()
                            held       v
                                  downloading
                                       |  mark_done(path, size, sha256, duration)
                                       v
                                     done   (sync() -> action "skip", reason "done")

    mark_failed(kind, code, message): from any status but done -> failed (failure_kind:
    permanent | transient | budget | auth | quota | dependency).
    mark_submitting() is allowed from new, failed, ambiguous and held (a resubmission).

Files: a fingerprint change archives the record here; the scheduler moves the old files with
``runner.state.outputs.archive_previous(output_dir, plan.previous)`` and, before saving an output,
``runner.state.outputs.archive_stale(output_dir, take)`` (covers a crash between the two).
``runner.state.trace.trace_record`` is the stable per-take record of ``status --json``.

``sync()`` answers, per take, an action (:class:`TakeAction`: skip, poll, download, submit,
retry, hold, failed, restore) and a reason - new, prompt changed, asset content changed,
settings changed, failed before, in flight, ambiguous submission, done. The budget's ledger
is the ``attempts`` table: :meth:`StateStore.credits_committed` sums it over the manifest's
whole life.
"""

from __future__ import annotations

from pathlib import Path

from runner.core import fsutil
from runner.core.model import Manifest
from runner.state.base import StoreDamaged, UnknownTake
from runner.state.dbfile import SCHEMA_VERSION
from runner.state.protocol import Store
from runner.state.records import (
    ACTIONS,
    REASONS,
    Event,
    FailureKind,
    TakeAction,
    TakePlan,
    TakeRecord,
    TakeStatus,
    UploadRecord,
)
from runner.state.store import StateStore

STATE_DIR = fsutil.STATE_DIR  # here too: the store's folder is where the state lives

STATE_FILE = "state.sqlite"


def store_path_for(manifest: Manifest | Path) -> Path:
    """``<output_dir>/.shotrun/state.sqlite`` for a manifest (or for an output directory)."""
    output_dir = manifest.output_dir if isinstance(manifest, Manifest) else Path(manifest)
    return output_dir / STATE_DIR / STATE_FILE


__all__ = [
    "ACTIONS",
    "REASONS",
    "SCHEMA_VERSION",
    "Event",
    "FailureKind",
    "StateStore",
    "Store",
    "StoreDamaged",
    "TakeAction",
    "TakePlan",
    "TakeRecord",
    "TakeStatus",
    "UnknownTake",
    "UploadRecord",
    "store_path_for",
]
