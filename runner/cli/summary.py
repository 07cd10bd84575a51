"""What ``shotrun run`` prints: why each take runs, before; the summary, after.

Text only (the command decides where it goes): the plan lines and the abandon warnings
(:func:`print_plan`), the summary of a finished run (:func:`format_summary`), with what the
next run does about each failed take and what it spends (:func:`next_run_lines`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core import advice
from runner.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from runner.core.money import format_amount, unit_word
from runner.core.redact import redact
from runner.core.words import count as counted
from runner.core.words import listed
from runner.scheduler.snapshot import RunSummary
from runner.views.outlook import abandon_warning, abandoned_task
from runner.wire.specs import spec as provider_spec

if TYPE_CHECKING:
    from runner.cli.progress import ProgressDisplay
    from runner.providers.session import RunConfig
    from runner.state import TakePlan


def out(text: str, *, err: bool = False) -> None:
    print(redact(text), file=sys.stderr if err else sys.stdout, flush=True)


PLAN_LINES = 40  # beyond this many takes to do, the plan is shown as counts per reason


def print_plan(plans: Sequence[TakePlan], *, stream_err: bool, quiet: bool = False) -> None:
    """Why each take runs, then the warnings; ``quiet`` (``-q``) keeps only the warnings."""
    if not quiet:
        _print_todo(plans, stream_err=stream_err)
    for plan in plans:
        previous = getattr(plan, "previous", None)
        abandoned = abandoned_task(previous) if previous is not None else None
        if abandoned is not None:  # plan warned of it in the same words (runner.views.outlook)
            out(f"shotrun: warning: {abandon_warning(plan.key, abandoned)}", err=True)


def _print_todo(plans: Sequence[TakePlan], *, stream_err: bool) -> None:
    """One line per take to do, or counts per action and reason for long lists."""
    todo = [plan for plan in plans if plan.action != "skip"]
    skipped = len(plans) - len(todo)
    if len(todo) <= PLAN_LINES:
        for plan in todo:
            out(f"  {plan.key:<40} {plan.action:<8} ({plan.reason})", err=stream_err)
    else:
        counts: dict[tuple[str, str], int] = {}
        for plan in todo:
            counts[(plan.action, plan.reason)] = counts.get((plan.action, plan.reason), 0) + 1
        for (action, reason), count in counts.items():
            out(f"  {action:<8} ({reason}): {counted(count, 'take')}", err=stream_err)
        out("  (shotrun plan MANIFEST lists them one by one; it sends nothing)", err=stream_err)
    if skipped:
        out(f"  {counted(skipped, 'take')} already done", err=stream_err)


def format_summary(summary: RunSummary, *, built_in: bool = False,
                   label: str = "the gateway", team: bool = False) -> str:
    """The human summary printed at the end of a run (``built_in``: the gateway was the
    built-in emulator, whose tasks end with the run; ``team``: runners share the store)."""
    before = "by other runners or earlier runs" if team else "from earlier runs"
    lines = [f"done: {summary.done + summary.skipped}/{summary.total}"
             + (f" ({summary.skipped} {before})" if summary.skipped else "")
             + (f"; {summary.with_others} more with other runners" if summary.with_others
                else "")]
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


def print_outcome(args: argparse.Namespace, config: RunConfig, summary: RunSummary,
                  observer: ProgressDisplay, report: Path | None, *,
                  team: Mapping[str, Any] | None = None) -> None:
    """The summary: JSON for a script (``--json``, ``--progress jsonl``), else text.
    ``team``: what the whole team did (:func:`runner.cli.run_store.team_summary`)."""
    scripted = args.json or args.progress == "jsonl"
    if scripted:
        document = summary.to_json()
        document["provider"] = config.provider  # who rendered: a script cannot tell otherwise
        document["report"] = None if report is None else str(report)
        if team is not None:
            document["team"] = dict(team)
        if args.progress == "jsonl":  # the stream's last line carries it (one JSON a line)
            observer.finish(document)
        else:
            out(json.dumps(document, indent=2))
    if not args.json and (not args.quiet or exit_code(summary) != EXIT_OK):
        # -q: nothing when all is done (the exit code says so); what went wrong otherwise.
        out(format_summary(summary, built_in=config.uses_emulator,
                           label=provider_spec(config.provider).label, team=team is not None),
            err=args.quiet or scripted)
        if team is not None and not args.quiet:
            out(team_line(team), err=scripted)
        if report is not None and not args.quiet:
            out(f"report: {report}", err=scripted)
    if summary.stopped_reason == "auth":
        out(f"shotrun: the API key comes from {config.key_source}; set it to a valid key "
            f"and run again ({advice.RESUMES})", err=True)


def team_line(team: Mapping[str, Any]) -> str:
    """One line: the whole shot list as the team left it, and who is still at work."""
    counts = team["takes"]
    parts = [f"{counts[name]} {name}" for name in
             ("done", "in flight", "failed", "held", "not started") if counts.get(name)]
    still = team["runners_still_working"]
    others = (f"; {still} other runner{'s' if still != 1 else ''} still at work"
              if still else "")
    return f"team: the shot list has {', '.join(parts) or 'no takes'}{others}"


def exit_code(summary: RunSummary) -> int:
    """0 all done, 130 interrupted, 1 otherwise."""
    if summary.stopped_reason == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.all_done else EXIT_FAILED
