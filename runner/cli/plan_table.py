"""The human plan ``shotrun plan`` prints: a table of takes, their payloads, the totals.

The rows and totals come from :mod:`runner.views.plan_document`; this only lays them out
(with rich, imported where used: it costs a tenth of a second at start-up).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.cli.warnings import warning_lines
from runner.core import advice
from runner.core.model import FrameRef, Manifest
from runner.core.money import CREDITS, RATE_KEYS, format_amount, unit_of, unit_word
from runner.core.redact import redact
from runner.core.words import count as counted
from runner.providers.session import Overrides
from runner.views.outlook import ENDED_WITH_EMULATOR, abandon_warning
from runner.views.plan_document import PlanRow, profile_choice, run_outlook, totals

if TYPE_CHECKING:  # imported where used: rich costs a tenth of a second at start-up
    from rich.console import Console


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_plan(manifest: Manifest, rows: Sequence[PlanRow], console: Console, *,
                spent: float = 0.0, payloads: bool = False,
                overrides: Overrides | None = None, provider: str | None = None) -> None:
    """The human plan: one table row per take, then (``payloads``) each take's wire payload,
    then totals.

    The prompt column is shown only when the terminal is wide enough to read it; ``--json``
    always has everything. With statuses (a store), the totals say what a run would send
    and what it leaves, and judge the cap after the ``spent`` credits. Payloads are one
    compact JSON line per take under its key, never cut: they are for reading in full or
    copying, and a table cell would fold or clip them. ``overrides`` (``--base-url``) choose
    the profile whose sizes are expected, as they would for ``run``. The manifest's warnings
    are printed in full once per unchanged file (:mod:`runner.cli.warnings`);
    ``provider`` (``--provider``) goes into the command that lists them again.
    """
    with_status = any(row.status is not None for row in rows)
    wide = console.width >= 120
    from rich import box  # here for start-up speed (see TYPE_CHECKING above)
    from rich.table import Table

    table = Table(title=f"{manifest.name}: {manifest.path}", show_lines=False,
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("take", no_wrap=True)
    table.add_column("format", no_wrap=True)
    table.add_column("inputs", no_wrap=True)
    if wide:
        table.add_column("prompt", min_width=16, ratio=1, overflow="fold")
    table.add_column(unit_word(unit_of(manifest.api.provider)), no_wrap=True, justify="right")
    if with_status:
        table.add_column("status", no_wrap=True)
        table.add_column("why", no_wrap=True)
    for row in rows:
        request = row.take.request
        count = {"img": len(request.images), "el": len(request.elements)}
        parts = [f"{v} {k}" for k, v in count.items() if v]
        if request.start_frame is not None:
            parts.append("start" if not isinstance(request.start_frame, FrameRef)
                         else f"start<-{request.start_frame.shot_id}")
        if request.end_frame is not None:
            parts.append("end" if not isinstance(request.end_frame, FrameRef)
                         else f"end<-{request.end_frame.shot_id}")
        audio = " +audio" if request.generate_audio else ""
        cells = [row.take.key,
                 f"{request.resolution} {request.aspect_ratio} {request.duration}s{audio}",
                 ", ".join(parts)]
        if wide:
            prompt = request.prompt if request.prompt is not None else " | ".join(
                s.prompt for s in request.multi_prompt or ())
            cells.append(_short(prompt))
        cells.append(row.figure.cell() if row.figure.estimated or row.figure.amount is None
                     else format_amount(row.figure.amount, row.unit, bare=True,
                                        short=row.figure.amount == 0))  # free: "0"
        if with_status:
            state = row.status.state if row.status else ""
            reason = row.status.reason if row.status else ""
            cells += [state, "" if reason == state else reason]
        table.add_row(*cells)
    console.print(table)
    if payloads:
        _print_payloads(rows, console)
    for line in _total_lines(manifest, rows, spent, with_status):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    for row in rows:  # the warning `run` prints once it has decided, before it decides
        if row.status is not None and row.status.abandons is not None:
            text = abandon_warning(row.take.key, row.status.abandons, planned=True)
            console.print(redact(f"warning: {text}"), highlight=False, markup=False,
                          soft_wrap=True)
    for line in warning_lines(manifest.path, manifest.warnings, provider):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    line = profile_choice(manifest, overrides).describe([row.take for row in rows])
    console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"Output: {manifest.output_dir}. Nothing was sent.", highlight=False,
                  markup=False, soft_wrap=True)


def _print_payloads(rows: Sequence[PlanRow], console: Console) -> None:
    console.print("Payloads (<upload PATH>: uploaded first; <frame ...>: cut from another "
                  "take's output):", highlight=False, markup=False, soft_wrap=True)
    for row in rows:
        text = json.dumps(row.payload, ensure_ascii=False, separators=(",", ":"))
        console.print(f"  {row.take.key}\n    {redact(text)}", highlight=False, markup=False,
                      soft_wrap=True)
    console.print()


def _total_lines(manifest: Manifest, rows: Sequence[PlanRow], spent: float,
                 with_status: bool) -> list[str]:
    """The totals under the table: one line without a store, else what a run would do.
    Every amount is in the unit the manifest's provider bills in (runner.core.money)."""
    found = run_outlook(manifest, rows, spent)
    total = totals(manifest, rows, spent, found=found)
    unit = found.unit

    def money(amount: float) -> str:
        return format_amount(amount, unit, short=True)

    def bare(amount: float) -> str:
        return format_amount(amount, unit, bare=True, short=True)

    cap = total["max_credits"]
    rates = f"budget.{RATE_KEYS[unit]}"
    count = total["unpriced_takes"]
    unpriced = f", {counted(count, 'take')} without a rate (set {rates})" if count else ""
    if not with_status:  # no store: every take runs, nothing was spent
        budget = ("no cap" if cap is None else
                  f"cap {bare(cap)}, " + ("within budget" if total["within_budget"] else
                                          "OVER BUDGET"))
        return [f"{counted(total['takes'], 'take')} of {counted(total['shots'], 'shot')}, "
                f"{total['seconds']} s of video, about {money(total['credits'])} "
                f"({budget}){unpriced}."]
    count = found.run_unpriced
    unpriced = f", {counted(count, 'take')} without a rate (set {rates})" if count else ""
    lines = [f"{counted(total['takes'], 'take')} of {counted(total['shots'], 'shot')}.",
             f"will run: {counted(found.counts['run'], 'take')}, {found.run_seconds} s of "
             f"video, about {money(found.run_credits)}{unpriced}.",
             f"already done: {counted(found.counts['done'], 'take')} "
             f"({money(found.spent)} spent so far, all runs)."]
    again = sum(1 for row in rows
                if row.status is not None and row.status.reason == ENDED_WITH_EMULATOR)
    if again:
        lines.append(f"created again: {counted(again, 'take')} in flight when the last run "
                     "ended (their tasks ended with the built-in emulator; counted in will "
                     "run: a run pays for them again).")
    if found.counts["restore"]:
        lines.append(f"restore: {counted(found.counts['restore'], 'take')} from kept renders "
                     "(0 credits).")
    if found.counts["in_flight"]:
        lines.append(f"in flight: {counted(found.counts['in_flight'], 'take')} (already "
                     f"paid; `shotrun run` collects them, {advice.SPENDS_NOTHING}).")
    if found.counts["not_run"]:
        lines.append(_not_run_line(rows, found.counts["not_run"]))
    named = "" if unit == CREDITS else f" {unit_word(unit)}"  # the gateway's: as it always was
    head = f"budget: {bare(found.spent)} spent + about {bare(found.run_credits)} to run = " \
           f"{bare(found.after_run)}{named}"
    cap_text = "no cap" if cap is None else f"cap {bare(cap)}"
    if cap is None:
        lines.append(f"{head} ({cap_text}).")
    elif found.within_budget:
        lines.append(f"{head} ({cap_text}, within budget).")
    else:
        lines.append(f"{head} ({cap_text}, OVER BUDGET: a run stops submitting at the cap, "
                     f"after about {found.fits} of {counted(found.counts['run'], 'take')}).")
    return lines


def _not_run_line(rows: Sequence[PlanRow], count: int) -> str:
    """Held and failed takes a plain run leaves alone, and what ``--retry-failed`` spends on
    them (each a new task: a paid task still collectable is never among them)."""
    _, credits, unpriced = advice.total(row.credits for row in rows
                                        if row.status is not None
                                        and row.status.action in ("hold", "failed"))
    unit = rows[0].unit if rows else CREDITS
    return (f"not run: {counted(count, 'take')} (held or failed); "
            + advice.would_create("`shotrun run --retry-failed`", count, credits, unpriced,
                                  unit)
            + ".")
