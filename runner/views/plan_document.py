"""What a run would send and what it would cost: the data ``shotrun plan`` shows.

For every take: its id and take number, its resolved inputs, the exact wire payload (local
files shown as ``<upload PATH>``, frames of other shots as ``<frame last of ID>``) and its
cost (:mod:`runner.core.money`: what was charged for a take already rendered, else the estimate
from the rates of the provider's unit); then totals against that unit's cap.

The run engine adds "done / in flight / changed and why" through the seam :func:`plan_rows`
and :func:`plan_document`: both take an optional mapping from :attr:`Take.key` to a
:class:`PlanStatus`. With a state store, the totals split what a run would send (and pay)
from what is done or in flight, and judge the cap against what the manifest already spent
(:mod:`runner.views.outlook`). ``runner.cli.commands.plan`` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.core.errors import UsageError
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
    totals_json,
    unit_of,
)
from runner.core.money import totals as money_totals
from runner.media.profile import ProfileChoice, gateway_label, profile_for, profile_json
from runner.providers.session import Overrides, RunConfig, resolve_config
from runner.views.outlook import Outlook, PlanStatus, abandoned_of, bucket, outlook
from runner.wire.bodies import body_for
from runner.wire.payload import (
    billed_seconds,
    build_payload,
    estimate_credits,
    preview_resolver,
)

__all__ = ["PlanRow", "PlanStatus", "inputs", "plan_document", "plan_rows", "profile_choice",
           "run_outlook", "totals"]


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
        "warnings": [p.to_json() for p in manifest.warnings],
        "profile": _profile_json(manifest, [row.take for row in rows], overrides),
    }


def profile_choice(manifest: Manifest, overrides: Overrides | None = None) -> ProfileChoice:
    """The gateway profile a run of this manifest would use, with ``overrides`` (plan's
    ``--base-url``) resolved as ``run`` resolves them: a profile is saved under the URL and
    provider ``shotrun probe`` was run with, which a flag may have chosen."""
    try:
        config = resolve_config(manifest, overrides)
    except UsageError:
        return profile_for(manifest.output_dir, None)  # run will say what is wrong
    return config_profile(manifest, config)


def config_profile(manifest: Manifest, config: RunConfig) -> ProfileChoice:
    """The gateway profile of where ``config`` sends (its provider and URL): what ``run``
    holds outputs to and what ``plan`` says it will."""
    return profile_for(manifest.output_dir, gateway_label(config.base_url,
                                                          config.uses_emulator, config.provider),
                       config.provider)


def _profile_json(manifest: Manifest, takes: list[Take],
                  overrides: Overrides | None = None) -> dict[str, Any]:
    return profile_json(profile_choice(manifest, overrides), takes)
