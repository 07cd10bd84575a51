"""The state store of a run: opened (rebuilt first when missing or empty) and let go.

What ``shotrun run`` says about its store: that a missing one was rebuilt from the output
folder, that a damaged one needs ``shotrun store rebuild`` (:func:`rebuild_command`), and
that one deleted or replaced while the run held it is rebuilt by the next run.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import UsageError
from runner.core.redact import redact

if TYPE_CHECKING:  # the store brings SQLite and the engine's records: imported where used
    from runner.core.model import Manifest
    from runner.providers.session import RunConfig
    from runner.state import StateStore
    from runner.state.team import Team

SPENDS = "spends nothing: nothing is sent to the provider"


def rebuild_command(manifest_path: Path | str) -> str:
    """The command that rebuilds this manifest's store, as a user types it."""
    return f"shotrun store rebuild {shlex.quote(str(manifest_path))}"


def open_for_run(manifest: Manifest, manifest_path: Path | str, *, err: bool, quiet: bool,
                 config: RunConfig, lease: float, retry_failed: bool, ambiguous: str,
                 ) -> tuple[StateStore, Team | None]:
    """The run's store and, for a team's database, this runner's membership (joined).

    The embedded file (:class:`runner.state.StateStore`) is rebuilt first when missing or
    empty, with one line saying so; a damaged one refused naming :func:`rebuild_command`.
    A team's store needs a provider every runner reaches: the built-in emulator lives and
    dies with one runner, so another could never collect its tasks (refused, exit 2).
    """
    from runner.state.location import store_at

    at = store_at(manifest)
    if not at.shared:
        return _open_file(manifest, manifest_path, err=err, quiet=quiet), None
    if config.uses_emulator:
        raise UsageError(
            f"a team's store ({at.where}) needs a provider every runner reaches: the built-in "
            "emulator lives inside one run; set api.base_url (or --base-url) to the gateway, "
            "or start `shotrun emulator` once and point every runner at it")
    from runner.state.pgstore import PgStore
    from runner.state.team import Team

    store = at.open_writer()
    assert isinstance(store, PgStore)  # a shared store is a database
    team = Team(store, lease=lease, retry_failed=retry_failed, ambiguous=ambiguous)
    try:
        team.join()
    except BaseException:
        store.close()
        raise
    return store, team


def leave_team(team: Team) -> None:
    """Give the runner's claims and idle seats back at the end (a failure is only logged:
    the lease ends them anyway)."""
    import structlog

    from runner.core.errors import StateError

    try:
        team.leave()
    except StateError as exc:
        structlog.get_logger().warning("team_not_left", error=str(exc))


def team_summary(team: Team) -> dict[str, Any]:
    """What the whole team has done to the shot list, for every runner's summary."""
    totals = team.store.totals()
    view = team.view()
    takes = {
        "done": totals["done"], "in flight": totals["submitting"] + totals["submitted"]
        + totals["completed"] + totals["downloading"], "failed": totals["failed"],
        "held": totals["held"] + totals["ambiguous"], "not started": totals["new"],
    }
    return {"takes": takes, "runners_still_working": max(0, view.runners - 1),
            "ambiguous_submissions": totals["ambiguous_submissions"],
            "committed": totals["committed"]}


def _open_file(manifest: Manifest, manifest_path: Path | str, *, err: bool,
               quiet: bool) -> StateStore:
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

    if store.path is None:
        # A team's database: runners on other machines append to the same journal, and
        # settling rewrites it, which could drop a line another runner is appending. The
        # journal backs the embedded file (a lost file is rebuilt from it); the database
        # keeps its own ledger, so a team's journal is only appended to.
        return
    try:
        settle(manifest.output_dir, store.statuses)
    except OSError as exc:  # left for the next run: they only ever make a take ambiguous
        structlog.get_logger().warning("intents_not_settled", error=str(exc))
    if not store.still_in_place():
        print(redact(f"shotrun: warning: the state store {store.path} was deleted or replaced "
                     "during this run; the next run rebuilds it from the output folder "
                     "(sidecars and the intents journal: nothing paid is lost)"),
              file=sys.stderr if err else sys.stdout, flush=True)
