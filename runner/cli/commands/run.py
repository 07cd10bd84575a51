"""``shotrun run MANIFEST``: render every take through the gateway and leave verified videos.

The command is the only layer that prints. It loads and checks the manifest (an invalid one
exits 2 before anything is sent or written), resolves the settings and the key, opens the
store, says per take why it runs, hands the plan to the engine, and prints the summary.

Exit codes: 0 every take done, 1 some failed (or were not rendered: budget, quota, a refused
key), 2 invalid manifest or usage, 4 the state store stopped recording mid-way (disk full,
read-only, gone: the run stops at once, without a summary), 130 interrupted. Ctrl-C once stops
gracefully (tasks in flight keep rendering at the gateway; the next run collects them); twice
exits at once.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from runner.cli.flags import (
    add_endpoint_flags,
    add_network_limits,
    add_poll_limits,
    add_store_flag,
    positive_float,
    positive_int,
)
from runner.cli.run_setup import RunSetup, announce, on_stop_handler, setup_run
from runner.cli.run_store import after_run, leave_team, open_for_run, team_summary
from runner.cli.summary import exit_code, print_outcome
from runner.core import log
from runner.core.errors import ShotrunError
from runner.core.model import SIZE_POLICIES, Manifest, Take
from runner.media.observed import OutputExpectations
from runner.providers.accounts import account_clients, held_accounts
from runner.providers.session import ClientLimits, RunConfig, open_session
from runner.scheduler.crew import TEAM_POLL
from runner.scheduler.snapshot import PROGRESS_MODES, EventSink, Observer, RunSummary
from runner.state.team import DEFAULT_LEASE
from runner.wire.payload import FingerprintPayloads
from runner.wire.specs import add_flag as add_provider_flag

if TYPE_CHECKING:  # the engine, its context and the live panel are imported where used:
    # they bring aiohttp, PyAV and rich, which `shotrun --help` would pay for at start-up
    from runner.cli.progress import ProgressDisplay
    from runner.scheduler.run_context import EngineSettings
    from runner.state import Store, TakePlan
    from runner.state.team import Team


def add_parser(subparsers: Any) -> None:
    """Register ``run`` and its options."""
    parser = subparsers.add_parser(
        "run", help="render every take of a manifest (resumable; spends credits, up to "
        "the budget)",
        description="Render every take of MANIFEST through the gateway, resuming where an "
        "earlier run stopped. Exit 0 all done, 1 some failed, 2 invalid manifest or usage, "
        "4 the state store could not record (disk full?), 130 interrupted.",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--only", action="append", default=[], metavar="ID|TAG",
                        help="run only these shots (id, id before matrix expansion, or tag); "
                        "repeatable")
    parser.add_argument("--retries", type=positive_int, default=2, metavar="N",
                        help="resubmissions of a take whose task failed transiently "
                        "(default 2); also caps the quick retries (at most 2) when the "
                        "gateway has not answered once yet")
    parser.add_argument("--retry-failed", action="store_true",
                        help="spends: also create new tasks for takes that failed "
                        "permanently before, whose result's lifetime is over or whose file is "
                        "missing with nothing to restore it from, and resubmit "
                        "held ambiguous ones (which may then be billed twice); a paid result "
                        "still collectable is collected, never created again")
    parser.add_argument("--ambiguous", choices=("resubmit", "hold"), default="resubmit",
                        help="a creation whose answer was lost: resubmit once (default; may "
                        "pay twice) or hold it")
    add_endpoint_flags(parser)
    add_provider_flag(parser)
    parser.add_argument("--concurrency", type=int, metavar="N",
                        help="tasks in flight at the gateway (api.concurrency)")
    parser.add_argument("--submit-rate", type=float, metavar="R",
                        help="creation requests per second at most (api.submit_rate)")
    parser.add_argument("--downloads", type=int, metavar="N",
                        help="downloads at once (api.downloads)")
    parser.add_argument("--max-credits", type=float, metavar="C",
                        help="spending cap over the manifest's life, in the unit the provider "
                        "bills in (budget.max_credits: gateway credits, max_units: Kling "
                        "units, max_usd: fal dollars)")
    add_poll_limits(parser)
    parser.add_argument("--poll-calibration", choices=("on", "off"), default="on",
                        help="aim each task's first status check by the task times this run "
                        "has measured (on, the default), or by the gateway's estimate alone")
    parser.add_argument("--backoff-base", type=float, metavar="S",
                        help="first retry delay ceiling (seconds, doubled per retry)")
    parser.add_argument("--backoff-cap", type=float, metavar="S",
                        help="longest retry delay (seconds)")
    parser.add_argument("--task-timeout", type=float, metavar="S", default=6 * 3600.0,
                        help="stop waiting for a task still rendering after S seconds (it is "
                        "left for the next run, never resubmitted; default 6 h)")
    add_network_limits(parser)
    parser.add_argument("--verify-size", choices=SIZE_POLICIES, metavar="warn|strict|off",
                        help="a video of another pixel size than expected: warn (the "
                        "manifest's verify.size, default warn: done, with a warning), strict "
                        "(fail the take) or off (record only)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="how the run shows its progress: auto (default: a live panel "
                        "on a terminal, a line now and then elsewhere, nothing with -q), bar, "
                        "lines, none, or jsonl (one JSON object per event on stdout, ending "
                        "with run_finished and the summary; every other text goes to stderr)")
    parser.add_argument("--no-report", action="store_true",
                        help="do not refresh <output_dir>/report.html at the end")
    add_store_flag(parser)
    team = parser.add_argument_group(
        "a team's store (--store, SHOTRUN_STORE_URL or state.url: runners on several "
        "machines share one shot list)")
    team.add_argument("--no-wait", action="store_true",
                      help="end once nothing is left to claim, instead of waiting for the "
                      "takes other runners hold (they collect them)")
    team.add_argument("--lease", type=positive_float, default=DEFAULT_LEASE, metavar="S",
                      help="how long this runner's claims outlive it, seconds (default "
                      f"{DEFAULT_LEASE:g}): another runner takes over a dead one's takes "
                      "after this, collecting what it created, never creating it again")
    team.add_argument("--team-poll", type=positive_float, default=TEAM_POLL, metavar="S",
                      help="how often a waiting runner looks for a free seat or a released "
                      f"take, seconds (default {TEAM_POLL:g})")
    parser.set_defaults(func=run)


def _flags_on_implicit_account(manifest: Manifest, config: RunConfig) -> Manifest:
    """``manifest`` with ``--concurrency`` and ``--submit-rate`` on its implicit account.

    Without ``api.accounts`` the one account is made of ``api.concurrency`` and
    ``api.submit_rate``, and their flags override them as they always did; the accounts a
    manifest names keep their own limits."""
    if manifest.api.named_accounts:
        return manifest
    api = dataclasses.replace(manifest.api, concurrency=config.concurrency,
                              submit_rate=config.submit_rate)
    return dataclasses.replace(manifest, api=api)


async def execute(manifest: Manifest, takes: Sequence[Take], plans: Sequence[TakePlan],
                  store: Store, config: RunConfig, api_key: str, settings: EngineSettings,
                  *, observer: Observer | None = None,
                  on_stop: Callable[[int], None] | None = None,
                  limits: ClientLimits | None = None,
                  expectations: OutputExpectations | None = None,
                  events: EventSink | None = None, team: Team | None = None,
                  team_poll: float = TEAM_POLL, team_wait: bool = True) -> RunSummary:
    """Open the session, run the engine with signal handling, return the summary."""
    from runner.scheduler.crew import Crew, SeatAccount
    from runner.scheduler.engine import Engine  # here for start-up speed: aiohttp, PyAV

    held = held_accounts(_flags_on_implicit_account(manifest, config), api_key,
                         built_in=config.uses_emulator)
    async with open_session(manifest, config, api_key, limits) as session, \
            account_clients(session, held, limits) as clients:
        crew = None
        if team is not None or manifest.api.named_accounts:
            # Seats per account (in the team's database when shared); the run's own limits
            # are the sum of the accounts it holds keys for.
            crew = Crew([SeatAccount(h.account.name, clients[h.account.name],
                                     h.account.concurrency) for h in held],
                        team=team, poll=team_poll)
            settings = dataclasses.replace(
                settings, concurrency=sum(h.account.concurrency for h in held),
                submit_rate=sum(h.account.submit_rate for h in held))
        engine = Engine(manifest, store, session.gateway, plans, settings, observer=observer,
                        upload_namespace=session.files_url, expectations=expectations,
                        events=events, crew=crew, team_wait=team_wait)
        del plans  # a store record per take: the engine kept what it needs of them
        loop = asyncio.get_running_loop()

        def stop() -> None:
            count = engine.request_stop()
            if on_stop is not None:
                on_stop(count)

        installed: list[signal.Signals] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests): Ctrl-C handling is the caller's business
        try:
            return await engine.run()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


def end_of_run_report(manifest: Manifest, store: Store) -> Path | None:
    """Refresh ``report.html`` so the summary can say where to look; never fails the run."""
    from runner.views.report import report_from_store

    try:
        return report_from_store(manifest, store).path
    except (OSError, ShotrunError) as exc:
        structlog.get_logger().warning("report_not_written", error=str(exc))
        return None


def _render(args: argparse.Namespace, setup: RunSetup, store: Store, team: Team | None
            ) -> tuple[RunSummary, ProgressDisplay]:
    """Plan the run from the store, say what it does, and run it to its summary."""
    from runner.cli.progress import make_observer  # here for start-up speed: rich
    from runner.scheduler.restore import check_plans  # here for start-up speed: PyAV

    manifest, takes = setup.manifest, setup.takes
    # Built as sync asks: none on a no-op resume.
    payloads = FingerprintPayloads(takes, manifest.api.wire, manifest.api.provider)
    plans = store.sync(takes, payloads, retry_failed=args.retry_failed,
                       ambiguous=args.ambiguous)
    plans = check_plans(store, manifest, takes, plans)  # files on disk: kept, lost
    store.record_provider(setup.config.provider)
    del payloads  # in the store now; not kept for the whole run (megabytes at 20,000)
    announce(args, setup, plans)
    with make_observer(sys.stderr, quiet=args.quiet, mode=args.progress) as observer:
        job = execute(manifest, takes, plans, store, setup.config, setup.api_key,
                      setup.settings, observer=observer, on_stop=on_stop_handler(setup.config),
                      limits=setup.limits, expectations=setup.expectations,
                      events=observer.event_sink(), team=team, team_poll=args.team_poll,
                      team_wait=not args.no_wait)
        del plans  # only the run holds them now, and it lets them go once started
        return asyncio.run(job), observer


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun run``."""
    setup = setup_run(args)  # ManifestError, UsageError -> exit 2, nothing written
    manifest = setup.manifest
    store, team = open_for_run(manifest, args.manifest, err=args.json, quiet=args.quiet,
                               config=setup.config, lease=args.lease,
                               retry_failed=args.retry_failed, ambiguous=args.ambiguous)
    log.open_run_log(manifest.output_dir / ".shotrun" / "run.log")
    shared: dict[str, Any] | None = None
    try:
        summary, observer = _render(args, setup, store, team)
        after_run(manifest, store, err=args.json)
        report = None if args.no_report else end_of_run_report(manifest, store)
        if team is not None:
            shared = team_summary(team)
            # "in total" is the team's ledger, not what this runner saw at its start.
            summary = dataclasses.replace(summary, credits_total=store.credits_committed(
                summary.unit))
    finally:
        if team is not None:
            leave_team(team)
        store.close()
        log.close_run_log()
    print_outcome(args, setup.config, summary, observer, report, team=shared)
    return exit_code(summary)
