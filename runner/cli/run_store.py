"""The state store of a run: opened (rebuilt first when missing or empty) and let go.

What ``shotrun run`` says about its store: that a missing one was rebuilt from the output
folder, that a damaged one needs ``shotrun store rebuild`` (:func:`rebuild_command`), and
that one deleted or replaced while the run held it is rebuilt by the next run.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from runner.core.redact import redact

if TYPE_CHECKING:  # the store brings SQLite and the engine's records: imported where used
    from runner.core.model import Manifest
    from runner.state import StateStore

SPENDS = "spends nothing: nothing is sent to the provider"


def rebuild_command(manifest_path: Path | str) -> str:
    """The command that rebuilds this manifest's store, as a user types it."""
    return f"shotrun store rebuild {shlex.quote(str(manifest_path))}"


def open_for_run(manifest: Manifest, manifest_path: Path | str, *, err: bool,
                 quiet: bool) -> StateStore:
    """The run's store (:class:`runner.state.StateStore`), rebuilt first when missing or
    empty, with one line saying so; a damaged one refused naming :func:`rebuild_command`."""
    from runner.state import store_path_for
    from runner.state.rebuild import EMPTY, open_or_rebuild

    opened = open_or_rebuild(store_path_for(manifest), manifest.output_dir,
                             command=rebuild_command(manifest_path))
    if opened.rebuilt is not None and not quiet:
        what = "empty" if opened.condition == EMPTY else "missing"
        print(redact(f"shotrun: the state store was {what}: rebuilt it from the output "
                     f"folder ({opened.rebuilt.describe()}); nothing was sent to do so"),
              file=sys.stderr if err else sys.stdout, flush=True)
    return opened.store


def after_run(manifest: Manifest, store: StateStore, *, err: bool) -> None:
    """At the end of a run: drop from the journal the intents the store has settled, and
    say so when the store was deleted or replaced while the run held it."""
    import structlog

    from runner.state.intents import settle

    try:
        settle(manifest.output_dir, store.statuses)
    except OSError as exc:  # left for the next run: they only ever make a take ambiguous
        structlog.get_logger().warning("intents_not_settled", error=str(exc))
    if not store.still_in_place():
        print(redact(f"shotrun: warning: the state store {store.path} was deleted or replaced "
                     "during this run; the next run rebuilds it from the output folder "
                     "(sidecars and the intents journal: nothing paid is lost)"),
              file=sys.stderr if err else sys.stdout, flush=True)
