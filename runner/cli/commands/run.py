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
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from runner.core import advice, log
from runner.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ShotrunError, UsageError
from runner.core.model import SIZE_POLICIES, Manifest, Take, VerifyPolicy
from runner.core.money import format_amount, unit_word
from runner.core.redact import redact
from runner.core.selection import select_takes
from runner.core.words import count as counted
from runner.core.words import listed
from runner.media.observed import OutputExpectations
from runner.media.profile import describe_expectations, gateway_label, profile_for
from runner.providers.session import ClientLimits, Overrides, RunConfig, open_session, prepare
from runner.scheduler.backoff import BackoffPolicy
from runner.scheduler.polling import PollPolicy
from runner.scheduler.snapshot import PROGRESS_MODES, EventSink, Observer, RunSummary
from runner.views.outlook import abandon_warning, abandoned_task
from runner.wire.payload import FingerprintPayloads
from runner.wire.specs import add_flag as add_provider_flag
from runner.wire.specs import spec as provider_spec

if TYPE_CHECKING:  # the engine, its context and the live panel are imported where used:
    # they bring aiohttp, PyAV and rich, which `shotrun --help` would pay for at start-up
    from runner.scheduler.run_context import EngineSettings
    from runner.state import StateStore

# Poll bounds: a real gateway renders in minutes; the built-in emulator in seconds.
ENV_DOWNLOAD_TIMEOUT = "SHOTRUN_DOWNLOAD_TIMEOUT"
ENV_MIN_DOWNLOAD_RATE = "SHOTRUN_MIN_DOWNLOAD_RATE"
REAL_POLLING = PollPolicy(min_interval=2.0, max_interval=30.0)
EMULATOR_POLLING = PollPolicy(min_interval=0.1, max_interval=2.0, default_estimate=5.0)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


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
    parser.add_argument("--retries", type=_positive_int, default=2, metavar="N",
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
    parser.add_argument("--base-url", metavar="URL",
                        help="gateway URL or `emulator` (overrides SHOTRUN_BASE_URL and "
                        "api.base_url)")
    parser.add_argument("--files-url", metavar="URL", help="file service URL")
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
    parser.set_defaults(func=run)


def add_network_limits(parser: argparse.ArgumentParser) -> None:
    """The client's time and size flags, read back by :func:`client_limits` (``run`` and
    ``probe`` share them)."""
    limits = parser.add_argument_group("network limits")
    limits.add_argument("--connect-timeout", type=float, metavar="S",
                        help="longest wait for a connection (default 15)")
    limits.add_argument("--request-timeout", type=float, metavar="S",
                        help="longest wait for a whole API exchange, e.g. a gateway that "
                        "stops answering (default 60)")
    limits.add_argument("--read-timeout", type=float, metavar="S",
                        help="longest a result download may go without a byte (default 60; "
                        "also the window --min-download-rate is measured over)")
    limits.add_argument("--download-timeout", type=_seconds, metavar="S",
                        help="longest one result download may take (default 7200; "
                        f"{ENV_DOWNLOAD_TIMEOUT}, api.download_timeout); beyond it the "
                        "download is retried later and the link kept: nothing is paid again")
    limits.add_argument("--min-download-rate", type=_rate, metavar="RATE",
                        help="slowest average a result download may have over each "
                        "--read-timeout window, in bytes per second or with K/M/G (default "
                        f"1K, 0 for none; {ENV_MIN_DOWNLOAD_RATE}, api.min_download_rate); "
                        "slower, it is retried later and the link kept: nothing is paid again")
    limits.add_argument("--max-result-size", type=_size, metavar="SIZE",
                        help="refuse results larger than this (bytes, or with K/M/G; "
                        "default 2G)")


def _size(text: str) -> int:
    """``1048576``, ``512K``, ``500M``, ``2G`` -> bytes (binary units)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    scale = units.get(text[-1:].upper(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)") from None
    if not value > 0 or value * scale > 2**62:
        raise argparse.ArgumentTypeError("must be a positive size")
    return int(value * scale)


def _seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _rate(text: str) -> float:
    """Bytes per second: ``2048``, ``16K``, ``1M``; 0 for none."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    scale = units.get(text[-1:].upper(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a rate: {text!r} (bytes per second, e.g. 2048, 16K, 1M; 0 for none)") from None
    if not 0 <= value <= 2**40:
        raise argparse.ArgumentTypeError(
            f"must be 0 or more bytes per second (at most 1T), got {text!r}")
    return value


def _download_bounds(args: argparse.Namespace, manifest: Manifest | None,
                     environ: Mapping[str, str]) -> dict[str, float]:
    """``--download-timeout``/``--min-download-rate`` > their environment variables > the
    manifest's ``api`` settings; what none of them gives is left to the client's default."""
    bounds: dict[str, float] = {}
    for name, flag, env_name, parse, setting in (
            ("download_total", args.download_timeout, ENV_DOWNLOAD_TIMEOUT, _seconds,
             manifest.api.download_timeout if manifest else None),
            ("min_download_rate", args.min_download_rate, ENV_MIN_DOWNLOAD_RATE, _rate,
             manifest.api.min_download_rate if manifest else None)):
        if flag is not None:
            bounds[name] = flag
        elif environ.get(env_name, "").strip():
            try:
                bounds[name] = parse(environ[env_name].strip())
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"environment variable {env_name}: {exc}") from None
        elif setting is not None:
            bounds[name] = setting
    return bounds


def client_limits(args: argparse.Namespace, manifest: Manifest | None = None,
                  environ: Mapping[str, str] | None = None) -> ClientLimits:
    """The gateway client's time and size limits from the flags, the environment and the
    manifest, in that order (bad values: usage error)."""
    from runner.providers.gateway.timeouts import ClientTimeouts

    given: dict[str, float] = {
        name: value for name, value in (("connect", args.connect_timeout),
                                        ("request", args.request_timeout),
                                        ("download_read", args.read_timeout))
        if value is not None}
    given.update(_download_bounds(args, manifest, os.environ if environ is None else environ))
    try:
        timeouts = ClientTimeouts(**given)
    except ValueError as exc:
        raise UsageError(f"timeout flags: {exc}") from None
    if args.max_result_size is None:
        return ClientLimits(timeouts=timeouts)
    return ClientLimits(timeouts=timeouts, max_result_bytes=args.max_result_size)


def add_poll_limits(parser: argparse.ArgumentParser) -> None:
    """``--poll-min``/``--poll-max`` (run and probe)."""
    parser.add_argument("--poll-min", type=float, metavar="S",
                        help="shortest interval between status checks of a task (seconds)")
    parser.add_argument("--poll-max", type=float, metavar="S",
                        help="longest interval between status checks of a task (seconds; a "
                        "first check aimed by the task times the run measured may wait longer)")


def poll_policy(args: argparse.Namespace, config: RunConfig, *, calibrate: bool = False
                ) -> PollPolicy:
    """The polling of a command from its ``--poll-min``/``--poll-max`` and where it goes
    (the built-in emulator is fast; a real gateway is not)."""
    base = EMULATOR_POLLING if config.uses_emulator else REAL_POLLING
    poll_min = args.poll_min if args.poll_min is not None else base.min_interval
    poll_max = args.poll_max if args.poll_max is not None else max(base.max_interval, poll_min)
    try:
        return PollPolicy(min_interval=poll_min, max_interval=poll_max,
                          default_estimate=base.default_estimate, calibrate=calibrate)
    except ValueError as exc:  # the values as used, defaults included: one may be unset
        raise UsageError(f"timing flags: --poll-min {poll_min:g}, --poll-max {poll_max:g}: "
                         f"{exc}") from None


def engine_settings(args: argparse.Namespace, config: RunConfig) -> EngineSettings:
    """Engine settings from the resolved config and the tuning flags."""
    from runner.scheduler.run_context import EngineSettings  # here for start-up speed

    polling = poll_policy(args, config, calibrate=args.poll_calibration == "on")
    backoff = BackoffPolicy()
    b_base = args.backoff_base if args.backoff_base is not None else backoff.base
    b_cap = args.backoff_cap if args.backoff_cap is not None else max(backoff.cap, b_base)
    try:
        backoff = BackoffPolicy(base=b_base, cap=b_cap,
                                retry_after_cap=max(b_cap, backoff.retry_after_cap
                                                    if args.backoff_cap is None else b_cap))
    except ValueError as exc:
        raise UsageError(f"timing flags: {exc}") from None
    return EngineSettings(
        concurrency=config.concurrency, submit_rate=config.submit_rate,
        downloads=config.downloads, max_credits=config.max_credits, retries=args.retries,
        ambiguous=args.ambiguous, backoff=backoff, polling=polling,
        task_timeout=args.task_timeout if args.task_timeout > 0 else None,
    )


def _out(text: str, *, err: bool = False) -> None:
    print(redact(text), file=sys.stderr if err else sys.stdout, flush=True)


PLAN_LINES = 40  # beyond this many takes to do, the plan is shown as counts per reason


def print_plan(plans: Sequence[Any], *, stream_err: bool, quiet: bool = False) -> None:
    """Why each take runs, then the warnings; ``quiet`` (``-q``) keeps only the warnings."""
    if not quiet:
        _print_todo(plans, stream_err=stream_err)
    for plan in plans:
        previous = getattr(plan, "previous", None)
        abandoned = abandoned_task(previous) if previous is not None else None
        if abandoned is not None:  # plan warned of it in the same words (runner.views.outlook)
            _out(f"shotrun: warning: {abandon_warning(plan.key, abandoned)}", err=True)


def _print_todo(plans: Sequence[Any], *, stream_err: bool) -> None:
    """One line per take to do, or counts per action and reason for long lists."""
    todo = [plan for plan in plans if plan.action != "skip"]
    skipped = len(plans) - len(todo)
    if len(todo) <= PLAN_LINES:
        for plan in todo:
            _out(f"  {plan.key:<40} {plan.action:<8} ({plan.reason})", err=stream_err)
    else:
        counts: dict[tuple[str, str], int] = {}
        for plan in todo:
            counts[(plan.action, plan.reason)] = counts.get((plan.action, plan.reason), 0) + 1
        for (action, reason), count in counts.items():
            _out(f"  {action:<8} ({reason}): {counted(count, 'take')}", err=stream_err)
        _out("  (shotrun plan MANIFEST lists them one by one)", err=stream_err)
    if skipped:
        _out(f"  {counted(skipped, 'take')} already done", err=stream_err)


def format_summary(summary: RunSummary, *, built_in: bool = False,
                   label: str = "the gateway") -> str:
    """The human summary printed at the end of a run (``built_in``: the gateway was the
    built-in emulator, whose tasks end with the run)."""
    lines = [f"done: {summary.done + summary.skipped}/{summary.total}"
             + (f" ({summary.skipped} from earlier runs)" if summary.skipped else "")]
    if summary.restored:
        lines.append(f"restored from kept renders: {counted(summary.restored, 'take')} "
                     "(0 credits)")
    for warning, count in summary.size_warnings:
        lines.append(f"warning: done at another size than expected: {counted(count, 'take')}, "
                     f"{warning} (recorded; `verify: {{size: strict}}` would fail them)")
    if summary.failed:
        lines.append(f"failed: {len(summary.failed)}")
        for label, keys in summary.failures_by_reason().items():
            lines.append(f"  {label}")
            lines.append(f"    {listed(keys, 5)}")
    lines.extend(next_run_lines(summary, built_in=built_in))
    if summary.ambiguous:
        lines.append(f"ambiguous submissions: {summary.ambiguous} (each may have been billed)")
    if summary.resubmitted_unknown:
        again = summary.resubmitted_unknown
        lines.append(f"submitted again, {label} no longer knew their task: "
                     f"{counted(len(again), 'take')} (the lost task may have been billed too)")
        lines.append(f"    {listed(again, 5)}")
    if summary.held:
        held = summary.next_run.held
        spend = advice.new_tasks(len(summary.held), held.credits, held.unpriced, summary.unit)
        lines.append(f"held (a creation's answer was lost; not resubmitted): "
                     f"{listed(summary.held, 5)}; --retry-failed resubmits them "
                     f"({spend}; the lost ones may have been billed too)")
    if summary.in_flight and built_in:
        lost = summary.next_run.resubmits
        spend = advice.new_tasks(len(summary.in_flight), lost.credits, lost.unpriced,
                                 summary.unit)
        lines.append(f"left at the built-in emulator: {len(summary.in_flight)} (it stopped "
                     f"with this run: the next run submits them again, {spend} at the emulator)")
    elif summary.in_flight:
        lines.append(f"still at {label}: {len(summary.in_flight)}; {advice.COLLECT_AGAIN}")
        for key, reason in summary.left_reasons.items():
            lines.append(f"  {key}: {reason}")
    if summary.not_started:
        lines.append(f"not submitted: {len(summary.not_started)}")
    lines.append(money_line(summary))
    lines.append(f"wall time: {summary.wall_time:.1f} s")
    if summary.stopped_reason == "interrupted":
        lines.append("stopped: interrupted")  # what it means was said at Ctrl-C and above
    elif summary.stopped_message:
        lines.append(f"stopped: {summary.stopped_message}")
    return "\n".join(lines)


def next_run_lines(summary: RunSummary, *, built_in: bool = False) -> list[str]:
    """What the next run does with the failed takes, each suggestion with what it spends.

    Paid tasks still collectable first (a plain run collects them for nothing; at the
    built-in emulator, whose tasks end with this run, only new ones render them), then what
    a plain run creates anew, then what only ``--retry-failed`` creates, each with its cost.
    """
    after = summary.next_run
    lines = []
    if after.collects and built_in:
        anew = after.collects_anew
        spend = advice.new_tasks(len(anew.keys), anew.credits, anew.unpriced, summary.unit)
        lines.append(f"not collected: {counted(len(after.collects), 'take')} (the built-in "
                     "emulator stopped with this run, and their tasks with it); --retry-failed "
                     f"renders them anew ({spend} at the emulator)")
    elif after.collects:
        lines.append(f"not collected yet: {counted(len(after.collects), 'paid take')}; "
                     f"{advice.COLLECT_AGAIN}")
    if after.creates.keys:
        again = after.creates
        spend = advice.new_tasks(len(again.keys), again.credits, again.unpriced, summary.unit)
        lines.append(f"to render again: {counted(len(again.keys), 'take')}; run again to "
                     f"retry them ({spend})")
    if after.retry_creates.keys:
        again = after.retry_creates
        lines.append(f"needs a new creation: {counted(len(again.keys), 'take')}; "
                     + advice.would_create("--retry-failed", len(again.keys), again.credits,
                                           again.unpriced, summary.unit))
    return lines

def money_line(summary: RunSummary) -> str:
    """``credits: 32.4 this run, 97.2 of 500 in total``, in the provider's unit (runner.core.money):
    the total is the manifest's whole-life ledger, as ``status`` and ``plan`` show it."""
    unit = summary.unit
    cap = ("" if summary.max_credits is None
           else f" of {format_amount(summary.max_credits, unit, bare=True, short=True)}")
    return (f"{unit_word(unit)}: {format_amount(summary.credits_run, unit, bare=True)} this "
            f"run, {format_amount(summary.credits_total, unit, bare=True)}{cap} in total")


def exit_code(summary: RunSummary) -> int:
    """0 all done, 130 interrupted, 1 otherwise."""
    if summary.stopped_reason == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.all_done else EXIT_FAILED


async def execute(manifest: Manifest, takes: Sequence[Take], plans: Sequence[Any],
                  store: Any, config: RunConfig, api_key: str, settings: EngineSettings,
                  *, observer: Observer | None = None,
                  on_stop: Callable[[int], None] | None = None,
                  limits: ClientLimits | None = None,
                  expectations: OutputExpectations | None = None,
                  events: EventSink | None = None) -> RunSummary:
    """Open the session, run the engine with signal handling, return the summary."""
    from runner.scheduler.engine import Engine  # here for start-up speed: aiohttp, PyAV

    async with open_session(manifest, config, api_key, limits) as session:
        engine = Engine(manifest, store, session.gateway, plans, settings, observer=observer,
                        upload_namespace=session.files_url, expectations=expectations,
                        events=events)
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


def end_of_run_report(manifest: Manifest, store: StateStore) -> Path | None:
    """Refresh ``report.html`` so the summary can say where to look; never fails the run."""
    from runner.cli.commands.report import report_from_store

    try:
        return report_from_store(manifest, store).path
    except (OSError, ShotrunError) as exc:
        structlog.get_logger().warning("report_not_written", error=str(exc))
        return None


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun run``."""
    from runner.cli.commands.store import after_run, open_for_run
    from runner.cli.progress import make_observer  # here for start-up speed: rich
    from runner.cli.warnings import warning_lines
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.scheduler.restore import check_plans  # here for start-up speed: PyAV

    # --json or --progress jsonl: stdout is for a machine; the human text goes to stderr.
    scripted = args.json or args.progress == "jsonl"
    # ManifestError -> exit 2, nothing written.
    manifest = load_manifest(args.manifest, args.provider, args.base_url)
    check_output_dir(manifest)  # a file where the folder goes: exit 2, nothing sent
    if args.verify_size is not None:  # the flag over the manifest's verify.size
        manifest = dataclasses.replace(manifest, verify=VerifyPolicy(size=args.verify_size))
    for line in warning_lines(manifest.path, manifest.warnings, args.provider):
        _out(line, err=True)
    takes = select_takes(manifest, args.only)
    overrides = Overrides(base_url=args.base_url, files_url=args.files_url,
                          concurrency=args.concurrency, submit_rate=args.submit_rate,
                          downloads=args.downloads, max_credits=args.max_credits)
    config, api_key = prepare(manifest, overrides)  # bad settings: exit 2 before any write
    # What outputs are held to: the manifest's verify rule, and the sizes `shotrun probe`
    # observed on this very gateway (a profile of another one is left out, and said so).
    chosen = profile_for(manifest.output_dir, gateway_label(config.base_url,
                                                            config.uses_emulator, config.provider),
                         config.provider)
    expectations = OutputExpectations(manifest.verify, chosen.profile)
    # How long a paid result stays collectable: the provider's documented lifetime.
    settings = dataclasses.replace(engine_settings(args, config), link_lifetime=provider_spec(
        config.provider).result_lifetime, retry_failed=args.retry_failed)
    limits = client_limits(args, manifest)
    wire = manifest.api.wire
    # Built as sync asks: none on a no-op resume.
    payloads = FingerprintPayloads(takes, wire, manifest.api.provider)

    store = open_for_run(manifest, args.manifest, err=args.json, quiet=args.quiet)
    log.open_run_log(manifest.output_dir / ".shotrun" / "run.log")
    try:
        plans = store.sync(takes, payloads, retry_failed=args.retry_failed,
                           ambiguous=args.ambiguous)
        plans = check_plans(store, manifest, takes, plans)  # files on disk: kept, lost
        store.record_provider(config.provider)
        del payloads  # in the store now; not kept for the whole run (megabytes at 20,000)
        where = "the built-in emulator" if config.uses_emulator else config.base_url
        if config.provider != "gateway":  # which wire format: the manifest may not say it
            where += f" ({provider_spec(config.provider).label})"
        if not args.quiet:  # -q: errors and warnings only (print_plan warns regardless)
            _out(f"shotrun: {manifest.name}: {counted(len(plans), 'take')} via {where}",
                 err=scripted)
            line = describe_expectations(chosen.profile, takes, chosen.other_gateway,
                                         chosen.provider, chosen.gateway)
            _out(f"  {line}", err=scripted)
        print_plan(plans, stream_err=scripted, quiet=args.quiet)

        # The built-in emulator lives in this process: its tasks end with the run, and the
        # next run's emulator does not know them (it submits those takes again; its credits
        # are not real). Saying they "keep rendering" would be false there.
        fate = ("the built-in emulator stops with this run, so the next run submits its tasks "
                "in flight again (new tasks at the emulator)" if config.uses_emulator else
                f"tasks in flight keep rendering at {provider_spec(config.provider).label} and "
                f"the next run collects them ({advice.SPENDS_NOTHING})")

        def on_stop(count: int) -> None:
            if count == 1:
                _out(f"\nshotrun: stopping: no new submissions; {fate} (Ctrl-C again to quit "
                     "at once)", err=True)
            else:
                _out("shotrun: quitting now; the state store is consistent", err=True)

        with make_observer(sys.stderr, quiet=args.quiet, mode=args.progress) as observer:
            job = execute(manifest, takes, plans, store, config, api_key, settings,
                          observer=observer, on_stop=on_stop, limits=limits,
                          expectations=expectations, events=observer.event_sink())
            del plans  # only the run holds them now, and it lets them go once started
            summary = asyncio.run(job)
        after_run(manifest, store, err=args.json)
        report = None if args.no_report else end_of_run_report(manifest, store)
    finally:
        store.close()
        log.close_run_log()
    if scripted:
        document = summary.to_json()
        document["provider"] = config.provider  # who rendered: a script cannot tell otherwise
        document["report"] = None if report is None else str(report)
        if args.progress == "jsonl":  # the stream's last line carries it (one JSON a line)
            observer.finish(document)
        else:
            _out(json.dumps(document, indent=2))
    if not args.json and (not args.quiet or exit_code(summary) != EXIT_OK):
        # -q: nothing when all is done (the exit code says so); what went wrong otherwise.
        _out(format_summary(summary, built_in=config.uses_emulator,
                            label=provider_spec(config.provider).label),
             err=args.quiet or scripted)
        if report is not None and not args.quiet:
            _out(f"report: {report}", err=scripted)
    if summary.stopped_reason == "auth":
        _out(f"shotrun: the API key comes from {config.key_source}; set it to a valid key "
             f"and run again ({advice.RESUMES})", err=True)
    return exit_code(summary)
