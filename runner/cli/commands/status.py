"""``shotrun status MANIFEST [--json] [--only ID|TAG]``: what every take is doing, from the store.

Prints what :func:`runner.views.status.gather` reads (read-only: it works beside a live run,
and still answers when the manifest no longer loads): a table of every take, the advice on
what the next run does with failed takes (each with what it spends) and the totals. Exit 0
whenever the store could be read (or no run happened yet); 1 when a done take's file is
missing or changed on disk; 2 for a manifest that does not load and never ran (nothing to
show), whose output folder cannot even be found or is a file, or an unreadable store.

``--json`` prints the document :mod:`runner.views.status` describes; the trace record's
fields are listed in :mod:`runner.state.trace`, and each take also has ``chosen`` (the take
``export`` ships and ``from_shot`` frames come from), ``picked`` (chosen by ``shotrun
pick``), ``from_shots`` (the shots it starts from) and ``note`` (the reviewer's note,
``shotrun review``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.cli.flags import add_store_flag
from runner.cli.status_table import PLAIN_ABOVE, plain_lines, rich_table
from runner.core import advice
from runner.core.errors import EXIT_FAILED, EXIT_OK
from runner.core.money import CREDITS, MONEY_UNITS, format_amount
from runner.core.redact import redact
from runner.core.words import count, plural
from runner.media.observed import distinct_size_warnings
from runner.views.status import MISSING, gather
from runner.wire.specs import add_flag as add_provider_flag


def add_parser(subparsers: Any) -> None:
    """Register ``status``."""
    parser = subparsers.add_parser(
        "status", help="show every take's state, also during a run (spends nothing)",
        description="Show, per shot and take, the status, task id, attempts, cost (in the unit "
        "the provider bills in: what it charged, else an estimate marked ~), output and last "
        "error recorded by `shotrun run`, read-only; a done take whose file is missing or "
        "changed on disk shows as `missing`, with what the next run does about it. Exit 0 "
        "when the state could be read, 1 when a done take's file is missing. Spends nothing.",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--json", action="store_true",
                        help="print one trace record per take and the totals as JSON")
    parser.add_argument("--only", action="append", default=[], metavar="ID|TAG",
                        help="only these shots (id, id before matrix expansion, take id or "
                        "tag); repeatable")
    add_provider_flag(parser)  # the provider is in every fingerprint: as the run had it
    add_store_flag(parser)
    parser.set_defaults(func=run)


def _next_run_lines(next_run: Mapping[str, Any], manifest: Path,
                    unit: str | None = None) -> list[str]:
    """The advice under the totals, each command with what it spends (in ``unit``)."""
    unit = unit or CREDITS
    lines = []
    anew = next_run["emulator_collects_resubmit"]
    if next_run["collects"] and next_run["built_in_emulator"]:
        lines.append(f"not collected: {count(anew['new_tasks'], 'take')} (the built-in "
                     "emulator's tasks ended with the run that made them); `shotrun run "
                     f"{manifest} --retry-failed` renders them anew ("
                     + advice.new_tasks(anew["new_tasks"], anew["credits"],
                                        anew["unpriced_takes"], unit) + " at the emulator)")
    elif next_run["collects"]:
        lines.append(f"not collected yet: {count(len(next_run['collects']), 'paid take')}; "
                     f"`shotrun run {manifest}` collects them ({advice.SPENDS_NOTHING})")
    for key, how in (("creates", f"`shotrun run {manifest}`"),
                     ("retry_failed_creates", f"`shotrun run {manifest} --retry-failed`")):
        again = next_run[key]
        if again["new_tasks"]:
            lines.append("failed: " + advice.would_create(
                how, again["new_tasks"], again["credits"], again["unpriced_takes"], unit))
    return lines


def _committed(totals: dict[str, Any]) -> str:
    """``121.5 credits committed of 500``, one part per unit the ledger or a cap names."""
    committed: dict[str, float] = totals.get("committed") or {}
    caps: dict[str, float] = totals.get("caps") or {}
    unit = totals.get("unit") or CREDITS
    shown = [name for name in MONEY_UNITS
             if committed.get(name) or name == unit]
    parts = []
    for name in shown:
        text = f"{format_amount(committed.get(name, 0.0), name)} committed"
        if name in caps:
            text += f" of {format_amount(caps[name], name, bare=True, short=True)}"
        parts.append(text)
    return "; ".join(parts)


def _summary(totals: dict[str, Any]) -> str:
    order = ("done", "submitted", "completed", "downloading", "submitting", "ambiguous", "held",
             "failed", MISSING, "new")
    parts = [f"{totals[name]} {name}" for name in order if totals.get(name)]
    line = f"{count(totals['takes'], 'take')}: " + (", ".join(parts) or "none")
    if totals["ambiguous_submissions"]:
        line += f"; {count(totals['ambiguous_submissions'], 'ambiguous submission')}"
    line += f"; {_committed(totals)}"
    if totals["not_in_manifest"]:
        gone = totals["not_in_manifest"]
        line += (f"; {count(gone, 'take')} in the store {plural(gone, 'is')} no longer in the "
                 "manifest")
    return line


def _team_line(where: str, team: Mapping[str, Any]) -> str:
    """Who works on a team's store now: ``store ...: 2 runners working: a (pid 7) holding
    3 takes, ...`` (a snapshot, as the table is)."""
    runners = team["runners"]
    if not runners:
        return f"store {where}: no runner is working on it now"
    who = ", ".join(f"{runner['host']} (pid {runner['pid']}) holding "
                    f"{count(runner['takes'], 'take')}" for runner in runners)
    return (f"store {where}: {count(len(runners), 'runner')} working: {who}; this is a "
            "snapshot, run status again to see it move on")


def run(args: argparse.Namespace) -> int:
    """Print the status of every take of ``args.manifest``."""
    document = gather(args.manifest, args.only, args.provider)
    if document["warning"]:
        print(redact(document["warning"]), file=sys.stderr)
    if args.json:
        print(redact(json.dumps(document, indent=2, ensure_ascii=False)))
        return EXIT_OK
    lines: list[str] = []
    if not document["run"]:
        lines.append(f"No run yet: {document['state']} does not exist. "
                     f"Start one with: shotrun run {args.manifest} (it spends credits; "
                     f"`shotrun plan {args.manifest}` shows how many, {advice.SPENDS_NOTHING})")
    if document["running_pid"]:
        lines.append(f"A run is going (pid {document['running_pid']}): this is a snapshot; "
                     "run status again to see it move on.")
    if "team" in document:
        lines.append(_team_line(document["state"], document["team"]))
    if len(document["takes"]) > PLAIN_ABOVE:
        lines.append(redact(plain_lines(document["takes"])))
    elif document["takes"]:
        from rich.console import Console

        # A pipe or a file gets wide lines rather than ids folded over three rows.
        console = Console(file=sys.stdout, highlight=False,
                          width=None if sys.stdout.isatty() else 160)
        _print_lines(lines)
        lines = []
        console.print(rich_table(document["takes"]))
    lines.extend(_next_run_lines(document["next_run"], args.manifest,
                                 document["totals"].get("unit")))
    lines.append(_summary(document["totals"]))
    for warning, takes in distinct_size_warnings(
            row for row in document["takes"] if row["status"] == "done"):
        lines.append(f"warning: {count(takes, 'take')} done at {warning}")
    _print_lines(lines)
    return EXIT_FAILED if document["totals"].get(MISSING) else EXIT_OK


def _print_lines(lines: Sequence[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
