"""``shotrun plan FILE [--json]``: what a run would send and what it would cost; no network.

For every take: its id and take number, its resolved inputs, the exact wire payload (local
files shown as ``<upload PATH>``, frames of other shots as ``<frame last of ID>``) and its
cost (:mod:`runner.core.money`: what was charged for a take already rendered, else the estimate
from the rates of the provider's unit); then totals against that unit's cap.

The run engine adds "done / in flight / changed and why" through the seam :func:`plan_rows`
and :func:`plan_document`: both take an optional mapping from :attr:`Take.key` to a
:class:`PlanStatus`; ``render_plan`` shows the status columns whenever one is given. With a
state store, the totals split what a run would send (and pay) from what is done or in flight,
and judge the cap against what the manifest already spent (:mod:`runner.views.outlook`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.cli.commands.validate import problem_json
from runner.cli.warnings import warning_lines
from runner.core import advice
from runner.core.errors import EXIT_OK, UsageError
from runner.core.model import (
    FrameRef,
    ImageElement,
    LocalFile,
    Manifest,
    Media,
    Take,
    TakeRequest,
    VideoElement,
)
from runner.core.money import (
    CAP_KEYS,
    CREDITS,
    MONEY_UNITS,
    RATE_KEYS,
    Figure,
    format_amount,
    totals_json,
    unit_of,
    unit_word,
)
from runner.core.money import totals as money_totals
from runner.core.redact import redact
from runner.core.selection import select_takes
from runner.core.words import count as counted
from runner.media.profile import (
    ProfileChoice,
    describe_expectations,
    gateway_label,
    profile_for,
    profile_json,
)
from runner.providers.session import Overrides, check_base_url_flag, resolve_config
from runner.views.outlook import (
    ENDED_WITH_EMULATOR,
    Outlook,
    PlanStatus,
    abandon_warning,
    abandoned_of,
    bucket,
    outlook,
    read_store,
)
from runner.wire.payload import (
    billed_seconds,
    build_payload,
    estimate_credits,
    preview_resolver,
)
from runner.wire.specs import add_flag as add_provider_flag
from runner.wire.specs import body_for, chosen_base_url

if TYPE_CHECKING:  # imported where used: rich costs a tenth of a second at start-up
    from rich.console import Console

__all__ = ["PlanRow", "PlanStatus", "plan_document", "plan_rows", "render_plan", "totals"]


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One take of the plan: ``estimate`` is what a new render would cost (in ``unit``)."""

    take: Take
    payload: Mapping[str, Any]
    estimate: float | None
    status: PlanStatus | None = None
    unit: str = CREDITS

    @property
    def figure(self) -> Figure:
        """What the take costs, as ``status`` and the report show it: the record's own
        figure (what was charged) for a take a run keeps, else the estimate."""
        status = self.status
        if bucket(status) == "restore":  # a kept render put back: nothing to pay
            return Figure(0.0, self.unit, False)
        if status is not None and status.figure is not None and bucket(status) != "run":
            return status.figure
        return Figure(self.estimate, self.unit, self.estimate is not None)

    @property
    def credits(self) -> float | None:
        """The amount of :attr:`figure`."""
        return self.figure.amount


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun plan``."""
    parser = subparsers.add_parser(
        "plan",
        help="show the takes, wire payloads and their cost (no network; spends nothing)",
        description="Expand the manifest and show every take with its resolved inputs, the "
        "payload that would be sent (--payloads, or --json), and its cost in the unit the "
        "provider bills in (gateway credits, Kling units, fal dollars): what was charged for "
        "a take already rendered, else an estimate (marked ~) from budget.rates, unit_rates "
        "or usd_rates; after a run, what a new run would do with each take and why, what was "
        "spent, and the budget left under that unit's cap. Sends nothing, spends nothing.",
    )
    parser.add_argument("file", metavar="FILE", help="manifest file (YAML)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_provider_flag(parser)
    parser.add_argument("--base-url", metavar="URL",
                        help="where a run would send, as `run --base-url`: a gateway URL or "
                        "`emulator` (overrides SHOTRUN_BASE_URL and api.base_url); chooses the "
                        "saved `shotrun probe` profile and whether local images can go to "
                        "fal.ai or the Kling API")
    parser.add_argument("--only", action="append", default=[], metavar="ID|TAG",
                        help="only these shots (id, id before matrix expansion, take id or "
                        "tag), as `run --only` selects them; repeatable")
    parser.add_argument("--payloads", action="store_true",
                        help="also print each take's wire payload (compact JSON; local files "
                        "shown as <upload PATH>)")
    parser.set_defaults(func=run)


def plan_rows(manifest: Manifest,
              statuses: Mapping[str, PlanStatus] | None = None,
              takes: Sequence[Take] | None = None) -> list[PlanRow]:
    """The plan's rows, of ``takes`` (default: all the manifest's); ``statuses`` (by take key)
    come from the state store when there is one."""
    rows: list[PlanRow] = []
    payloads: dict[int, tuple[dict[str, Any], float | None]] = {}
    unit = unit_of(manifest.api.provider)
    rates = manifest.budget.rates_for(unit)
    for take in manifest.takes if takes is None else takes:
        found = payloads.get(id(take.request))  # the takes of a shot share one request
        if found is None:
            payload = build_payload(take.request, preview_resolver, manifest.api.wire)
            found = (body_for(manifest.api.provider, payload),
                     estimate_credits(take.request, rates))
            payloads[id(take.request)] = found
        status = statuses.get(take.key) if statuses is not None else None
        # A kept render of the same fingerprint is put back at no cost (runner.state.kept).
        credits = 0.0 if status is not None and status.action == "restore" else found[1]
        rows.append(PlanRow(take, found[0], credits, status, unit))
    return rows


def _media(media: Media) -> Any:
    if isinstance(media, LocalFile):
        return {"file": str(media.path), "sha256": media.sha256, "size": media.size,
                "mime": media.mime}
    if isinstance(media, FrameRef):
        return {"from_shot": media.shot_id, "frame": media.frame}
    return {"url": media}


def inputs(request: TakeRequest) -> dict[str, Any]:
    """The resolved inputs of a request, as JSON."""
    found: dict[str, Any] = {}
    if request.start_frame is not None:
        found["start_frame"] = _media(request.start_frame)
    if request.end_frame is not None:
        found["end_frame"] = _media(request.end_frame)
    if request.images:
        found["images"] = [_media(m) for m in request.images]
    if request.elements:
        found["elements"] = [
            {"video": e.video} if isinstance(e, VideoElement) else
            {"frontal": _media(e.frontal), "references": [_media(r) for r in e.references]}
            for e in request.elements if isinstance(e, VideoElement | ImageElement)
        ]
    return found


def run_outlook(manifest: Manifest, rows: Sequence[PlanRow], spent: float = 0.0) -> Outlook:
    """What a run of ``rows`` would send and spend, after ``spent`` credits (the store's)."""
    return outlook(manifest, ((row.status, row.estimate, billed_seconds(row.take.request))
                              for row in rows), spent)


def totals(manifest: Manifest, rows: Sequence[PlanRow], spent: float = 0.0, *,
           found: Outlook | None = None) -> dict[str, Any]:
    """Counts, seconds and credits of every take of the plan, done or not.

    ``within_budget`` is the run's own test: what the manifest spent (``spent``) plus the
    estimates of the takes a run would send, against the cap; without a store, every take.
    ``found`` is that outlook when the caller has it already, so the rows are walked once.
    """
    figures = [row.figure for row in rows]
    by_unit = money_totals(figures)
    unit = unit_of(manifest.api.provider)
    return {
        "shots": len({row.take.shot_id for row in rows}),
        "takes": len(rows),
        "seconds": sum(billed_seconds(row.take.request) for row in rows),
        # Per take its figure (charged where known), summed in the provider's unit.
        "credits": round(by_unit[unit].total, 4) if unit in by_unit else 0.0,
        "money": totals_json(by_unit),
        "unit": unit,
        "unpriced_takes": sum(1 for figure in figures if figure.amount is None),
        "max_credits": manifest.budget.cap(unit),
        "within_budget": (found or run_outlook(manifest, rows, spent)).within_budget,
    }


def plan_document(manifest: Manifest,
                  statuses: Mapping[str, PlanStatus] | None = None, *,
                  spent: float = 0.0, takes: Sequence[Take] | None = None,
                  overrides: Overrides | None = None) -> dict[str, Any]:
    """The whole plan as JSON-ready data (what ``plan --json`` prints).

    ``totals`` counts every take; ``this_run`` what a run would send now (``will_run``), what
    it leaves (``already_done``, ``in_flight``, ``not_run``), the credits the store says were
    spent and the budget judged on spent plus to run. ``takes`` limits the plan to a
    selection (``--only``); the credits spent stay the manifest's whole life, as the cap's.
    ``overrides`` (``--base-url``) choose the profile as they would for ``run``.
    """
    rows = plan_rows(manifest, statuses, takes)
    items = []
    for row in rows:
        take = row.take
        item: dict[str, Any] = {
            "key": take.key, "shot_id": take.shot_id, "take": take.take,
            "fingerprint": take.fingerprint, "after": list(take.after), "tags": list(take.tags),
            "location": str(take.location) if take.location else None,
            "inputs": inputs(take.request), "payload": row.payload, "credits": row.credits,
            "cost": row.figure.to_json(),
        }
        if row.status is not None:
            item["status"] = {"state": row.status.state, "reason": row.status.reason}
            if row.status.abandons is not None:
                item["status"]["abandons"] = {"task_id": row.status.abandons.task_id,
                                              "status": row.status.abandons.status}
        items.append(item)
    api = manifest.api
    found = run_outlook(manifest, rows, spent)
    return {
        "manifest": str(manifest.path), "name": manifest.name,
        "output_dir": str(manifest.output_dir),
        "api": {"base_url": api.base_url, "files_url": api.files_url, "model": api.model,
                "api_key_env": api.api_key_env, "wire": dict(api.wire)},
        "budget": {**{CAP_KEYS[unit]: manifest.budget.cap(unit) for unit in MONEY_UNITS},
                   **{RATE_KEYS[unit]: dict(manifest.budget.rates_for(unit))
                      for unit in MONEY_UNITS}},
        "takes": items,
        "totals": totals(manifest, rows, spent, found=found),
        "this_run": found.to_json(
            abandoned_of(statuses, (row.take.key for row in rows))),
        "warnings": [problem_json(p) for p in manifest.warnings],
        "profile": _profile_json(manifest, [row.take for row in rows], overrides),
    }


def _profile(manifest: Manifest, overrides: Overrides | None = None) -> ProfileChoice:
    """The gateway profile a run of this manifest would use, with ``overrides`` (plan's
    ``--base-url``) resolved as ``run`` resolves them: a profile is saved under the URL and
    provider ``shotrun probe`` was run with, which a flag may have chosen."""
    try:
        config = resolve_config(manifest, overrides)
    except UsageError:
        return profile_for(manifest.output_dir, None)  # run will say what is wrong
    return profile_for(manifest.output_dir, gateway_label(config.base_url,
                                                          config.uses_emulator, config.provider),
                       config.provider)


def _profile_json(manifest: Manifest, takes: list[Take],
                  overrides: Overrides | None = None) -> dict[str, Any]:
    chosen = _profile(manifest, overrides)
    return profile_json(chosen.profile, manifest.output_dir, takes, chosen.other_gateway,
                        chosen.provider, chosen.gateway)


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
    chosen = _profile(manifest, overrides)
    line = describe_expectations(chosen.profile, [row.take for row in rows],
                                 chosen.other_gateway, chosen.provider, chosen.gateway)
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


def store_statuses(manifest: Manifest) -> dict[str, PlanStatus] | None:
    """What a run would do with each take, from the state store (read-only); None if no store."""
    view = read_store(manifest)
    return None if view is None else view.statuses


def run(args: argparse.Namespace) -> int:
    """Print the plan of one manifest (problems make it exit 2 through the CLI)."""
    # Here, not at the top, for start-up speed (YAML, jsonschema, rich).
    from rich.console import Console

    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    check_base_url_flag(args.base_url)  # as run refuses it
    manifest = load_manifest(args.file, args.provider, args.base_url)
    check_output_dir(manifest)  # as run would refuse it: a plan must not promise a run
    takes: list[Take] | None = None
    if args.only:  # run's own selection: `plan --only X` shows what `run --only X` does
        takes = select_takes(manifest, args.only)
    built_in = (chosen_base_url(args.base_url) or manifest.api.base_url) == "emulator"
    view = read_store(manifest, built_in=built_in)
    statuses = None if view is None else view.statuses
    spent = 0.0 if view is None else view.spent
    overrides = Overrides(base_url=args.base_url)
    if args.json:
        document = plan_document(manifest, statuses, spent=spent, takes=takes,
                                 overrides=overrides)
        print(redact(json.dumps(document, indent=2, ensure_ascii=False)))
        return EXIT_OK
    # Piped output is for reading in full or grepping: never cut it to 80 columns.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    console = Console(file=sys.stdout, soft_wrap=False, width=width)
    render_plan(manifest, plan_rows(manifest, statuses, takes), console, spent=spent,
                payloads=args.payloads, overrides=overrides, provider=args.provider)
    return EXIT_OK
