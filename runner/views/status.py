"""What ``shotrun status`` shows, as the JSON document ``status --json`` prints.

The status data is read here, printed by :mod:`runner.cli.commands.status`, and read again by
``report --csv`` (the same trace records). It opens the state store read-only, so it works
beside a live run (WAL readers never block the writer, and no lock is taken) and answers
within the moment. It still answers when the manifest no longer loads (edited into an
invalid state mid-run): it then shows every take the store holds, with a warning.

A done take whose file is missing or changed on disk (one ``stat`` per take; a hash only for
a file touched since it was verified) shows as ``missing``, with what the next run does about
it. A take being rendered anew whose earlier render still sits at its path shows that file
as its output, "(previous render)".

The document: ``{"manifest", "provider", "last_run_provider", "state", "run",
"running_pid", "warning", "takes": [trace records], "totals", "next_run"}``, and ``"team"``
for a team's store (``state``: the store's file, or its database's URL without the password;
``team``: ``{"runners": [{"id", "host", "pid", "takes", "lease_left"}], "takes_claimed"}``,
the runners working on the database now and the takes each holds; the embedded file has no
such key, as before teams; ``next_run``: failed takes a run collects for nothing, and those
it would create anew, with their estimated credits); the trace record's fields are listed in
:mod:`runner.state.trace`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.core import advice
from runner.core.bulk import paused_gc
from runner.core.errors import Location, ManifestError, Problem, UsageError
from runner.core.model import Manifest
from runner.core.money import CREDITS, MONEY_UNITS, unit_of
from runner.core.selection import names_take
from runner.providers.session import resolve_config
from runner.state import StateStore, TakeRecord, TakeStatus, kept
from runner.state.continuity import chosen_takes, frame_sources, picks, source_changes
from runner.state.decide import decide
from runner.state.location import StoreAt, store_at, store_in
from runner.state.notes import current_notes, notes
from runner.state.ondisk import done_files
from runner.state.trace import new_trace_record, read_traces, trace_totals
from runner.wire.payload import estimate_credits
from runner.wire.specs import other_provider_note

MISSING = "missing"  # done, but its file is not on disk as verified: counted apart, exit 1
# The reason shown for a take the manifest changed after it was rendered (or submitted).
STALE = "changed since: the next run renders it again"


def _fallback_store(path: Path, error: ManifestError) -> tuple[Path, StoreAt]:
    """The store of a manifest that does not load, from its three plain fields (the output
    folder from ``output_dir`` or ``name``, and ``state.url``)."""
    from runner.manifest.context import get_str
    from runner.manifest.loader import load_yaml

    try:
        root, _problems = load_yaml(path)
    except ManifestError:
        raise error from None
    written = get_str(root, "output_dir")
    name = get_str(root, "name")
    if not written and not name:
        raise error
    where = Path(written).expanduser() if written else Path("renders") / str(name)
    url = get_str(root.get("state") if isinstance(root, dict) else None, "url")
    output_dir = where if where.is_absolute() else path.absolute().parent / where
    return output_dir, store_in(output_dir, url)


def _load(path: Path, provider: str | None = None
          ) -> tuple[Manifest | None, Path, StoreAt, str | None]:
    """(manifest or None, output folder, its store, warning); ``provider`` as
    ``--provider``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    try:
        manifest = load_manifest(path, provider, sends=False)  # status sends nothing
    except ManifestError as exc:
        output_dir, at = _fallback_store(path, exc)
        if not at.exists():  # invalid, and never ran: nothing to show
            raise ManifestError([*exc.problems, Problem(
                Location(str(path)), "", "does not load and has never run, so there is no "
                "status to show; fix the problems above (shotrun validate FILE)")]) from None
        warning = (f"shotrun: warning: {path} does not load any more ({exc}); showing what "
                   "the state store holds")
        return None, output_dir, at, warning
    check_output_dir(manifest)  # else a file there would read as "no run yet"
    return manifest, manifest.output_dir, store_at(manifest), None


def _selected(record: dict[str, Any], base_ids: dict[str, str], only: Sequence[str]) -> bool:
    if not only:
        return True
    names = (record["id"], record["shot"], base_ids.get(record["shot"], record["shot"]))
    return any(names_take(selector, names, record["tags"]) for selector in only)


def gather(manifest_path: Path, only: Sequence[str] = (), provider: str | None = None
           ) -> dict[str, Any]:
    """Everything ``status`` shows, as the JSON document ``--json`` prints.

    ``provider`` (``--provider``, else ``SHOTRUN_PROVIDER``, else ``api.provider``) must be
    the one the run used: it is part of every take's fingerprint, so another one would show
    every rendered take as changed since.
    """
    with paused_gc():  # 20,000 records and trace records, nothing cyclic: see runner.core.bulk
        return _gather(manifest_path, only, provider)


@dataclass
class _Stored:
    """What the state store says of the takes, as ``status`` shows them."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # trace records by key
    chosen: dict[str, tuple[int, bool]] = field(default_factory=dict)
    life: dict[str, Any] = field(default_factory=lambda: {
        "credits_committed": 0.0, "committed": {}, "ambiguous_submissions": 0})
    last_provider: str | None = None
    stale: set[str] = field(default_factory=set)
    failed: list[TakeRecord] = field(default_factory=list)  # full records: few, mostly
    warning: str | None = None
    team: dict[str, Any] | None = None  # a team's store: its live runners


def _team(store: StateStore) -> dict[str, Any]:
    """``status --json``'s ``team``: the live runners of a team's store and their claims."""
    from runner.state.roster import live_runners  # psycopg: only for a database

    runners = live_runners(store)
    return {"runners": [runner.as_json() for runner in runners],
            "takes_claimed": sum(runner.takes for runner in runners)}


def _read_store(at: StoreAt, output_dir: Path, manifest: Manifest | None,
                warning: str | None) -> _Stored:
    """Every take the store holds, as trace records marked up for ``status``."""
    found = _Stored(warning=warning)
    records = found.records
    with at.open_reader() as store:
        if at.shared:
            found.team = _team(store)
        found.last_provider = store.last_provider()
        fingerprints = {t.key: t.fingerprint for t in manifest.takes} if manifest else {}
        traces, stored = read_traces(store, output_dir)  # one read for both
        for trace, record in zip(traces, stored, strict=True):
            records[record.key] = trace
            if fingerprints.get(record.key, record.fingerprint) != record.fingerprint:
                found.stale.add(record.key)
        found.failed = [store.record(trace["id"]) for trace in traces
                        if trace["status"] == TakeStatus.FAILED.value]
        lost_files = _lost_files(store, output_dir, manifest)
        totals = store.totals()
        found.life = {key: totals[key] for key in found.life}
        found.chosen = chosen_takes(stored, picks(store), fingerprints or None)
        for key, text in current_notes(notes(store), stored).items():
            records[key]["note"] = text
        if manifest is not None:  # continuity: its source was rendered or picked anew
            found.stale.update(source_changes(store, manifest.takes))
            note = other_provider_note(found.last_provider, manifest.api.provider)
            if note is not None and warning is None:
                found.warning = f"shotrun: warning: {note}"
    for key in found.stale:
        records[key]["reason"] = STALE
    for key, (problem, fate) in lost_files.items():  # done, but not on disk as verified
        records[key].update(status=MISSING, reason=problem, error=f"{problem}: {fate}")
    for trace in records.values():
        if trace["status"] == "failed" and trace["failure_kind"] == MISSING:
            trace["status"] = MISSING  # lost for good by an earlier run: still missing
        elif trace["output"] is None and trace["status"] != "done":
            trace["output"] = _previous_render(output_dir, trace)
    return found


def _rows(manifest_path: Path, manifest: Manifest | None, records: dict[str, dict[str, Any]],
          only: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    """The trace records ``status`` shows, in the manifest's order (a take no run has
    covered yet as new), those ``--only`` selects; and how many takes of the store the
    manifest no longer has."""
    base_ids: dict[str, str] = {}
    dropped = 0
    if manifest is not None:
        rows = []
        for take in manifest.takes:
            base_ids[take.shot_id] = take.base_shot_id or take.shot_id
            found = records.pop(take.key, None)
            rows.append(found if found is not None
                        else new_trace_record(take.key, take.shot_id, take.take, take.tags))
        dropped = len(records)  # what is left is no longer in the manifest
    else:
        rows = list(records.values())
    if only:
        known = {name for row in rows for name in
                 (row["id"], row["shot"], base_ids.get(row["shot"], ""), *row["tags"])}
        unknown = [selector for selector in only if selector not in known]
        if unknown:
            raise UsageError(f"--only {unknown[0]}: no shot id or tag of {manifest_path} "
                             "matches it")
    return [row for row in rows if _selected(row, base_ids, only)], dropped


def _gather(manifest_path: Path, only: Sequence[str], provider: str | None) -> dict[str, Any]:
    manifest, output_dir, at, warning = _load(manifest_path, provider)
    ran = at.exists()
    stored = _read_store(at, output_dir, manifest, warning) if ran else _Stored(
        warning=warning)
    rows, dropped = _rows(manifest_path, manifest, stored.records, only)
    _mark_chosen(rows, stored.chosen, manifest)
    selected = {row["id"] for row in rows} - stored.stale if ran else set()
    failed = [record for record in stored.failed if record.key in selected]
    unit = unit_of(manifest.api.provider) if manifest is not None else None
    totals = {**trace_totals(_in_unit(rows, unit)), **stored.life,
              # The cap of the unit the provider bills in, as plan and the summary say it.
              "max_credits": manifest.budget.cap(unit) if manifest and unit else None,
              "caps": _caps(manifest), "unit": unit,
              "not_in_manifest": dropped}
    document = {
        "manifest": str(manifest_path),
        # The provider the manifest was read for (its takes' fingerprints include it), and
        # the one the last run rendered with.
        "provider": manifest.api.provider if manifest is not None else None,
        "last_run_provider": stored.last_provider,
        "state": at.where,
        "run": ran,
        "running_pid": at.run_pid() if ran else None,
        "warning": stored.warning,
        "takes": rows,
        "totals": totals,
        "next_run": _next_run(failed, manifest),
    }
    if at.shared:
        document["team"] = stored.team or {"runners": [], "takes_claimed": 0}
    return document


def _next_run(records: Sequence[TakeRecord], manifest: Manifest | None) -> dict[str, Any]:
    """What a run would do with the failed takes, and what it spends (``next_run``).

    ``collects``: failed takes whose paid task a plain ``shotrun run`` collects for nothing;
    ``retry_failed_creates``: those only ``--retry-failed`` renders anew, with the estimate.
    Judged by the run's own rule (:func:`runner.state.decide.decide`) as of now.
    """
    # Priced in the unit the provider bills in (Kling units, fal dollars), as plan does.
    rates = manifest.budget.rates_for(unit_of(manifest.api.provider)) if manifest else {}
    requests = {take.key: take.request for take in manifest.takes} if manifest else {}
    now = time.time()
    collects: list[str] = []
    creates: list[str] = []
    retry: list[str] = []
    for record in records:
        if record.status is not TakeStatus.FAILED:
            continue
        action, _ = decide(record, now=now)
        if action == "download":
            collects.append(record.key)
        else:
            (creates if action == "retry" else retry).append(record.key)

    def priced(keys: list[str]) -> dict[str, Any]:
        number, credits, unpriced = advice.total(
            estimate_credits(requests[key], rates) if key in requests else None
            for key in keys)
        return {"takes": keys, "new_tasks": number, "credits": round(credits, 4),
                "unpriced_takes": unpriced}

    return {"collects": collects, "emulator_collects_resubmit": priced(collects),
            "creates": priced(creates), "retry_failed_creates": priced(retry),
            "built_in_emulator": bool(collects) and _built_in(manifest)}


def _built_in(manifest: Manifest | None) -> bool:
    """True when a run of ``manifest`` goes to the built-in emulator, whose tasks end with
    the run that made them: nothing of theirs is left to collect."""
    if manifest is None:
        return False
    try:
        return resolve_config(manifest).uses_emulator
    except UsageError:  # run will say what is wrong; no promise either way
        return False


def _mark_chosen(rows: Sequence[dict[str, Any]], chosen: Mapping[str, tuple[int, bool]],
                 manifest: Manifest | None) -> None:
    """Add ``chosen``, ``picked`` and ``from_shots`` (continuity sources) to each row."""
    sources: dict[str, tuple[str, ...]] = {}
    if manifest is not None:
        for one in manifest.takes:  # a shot's takes share one request: once per shot
            if one.shot_id not in sources:
                sources[one.shot_id] = frame_sources(one)
    for row in rows:
        take, picked = chosen.get(row["shot"], (0, False))
        row["chosen"] = take == row["take"]
        row["picked"] = row["chosen"] and picked
        row["from_shots"] = list(sources.get(row["shot"], ()))


def _in_unit(rows: list[dict[str, Any]], unit: str | None) -> list[dict[str, Any]]:
    """``rows``, a take never submitted given the unit of the manifest's provider (the store
    knows a take's unit from its first submission)."""
    if unit is not None:
        for row in rows:
            if row["credits"] is None:
                row["unit"] = unit
    return rows


def _caps(manifest: Manifest | None) -> dict[str, float]:
    """The manifest's caps by unit (``{"credits": 500.0}``): each binds its own unit only."""
    if manifest is None:
        return {}
    caps = {unit: manifest.budget.cap(unit) for unit in MONEY_UNITS}
    return {unit: cap for unit, cap in caps.items() if cap is not None}


def _previous_render(output_dir: Path, trace: dict[str, Any]) -> str | None:
    """The take's earlier render still at its path (kept there until the new one is
    verified), relative to the output folder; None when there is none."""
    relative = f"{trace['shot']}/take-{trace['take']}.mp4"
    return relative if (output_dir / relative).is_file() else None


def _lost_files(store: StateStore, output_dir: Path, manifest: Manifest | None
                ) -> dict[str, tuple[str, str]]:
    """Done takes whose file is missing or changed: key -> (what, what a run does about it).

    One ``stat`` per done take (the hash only for a file touched since it was verified):
    ``status`` of 20,000 takes stays well under a second.
    """
    takes = {take.key: take for take in manifest.takes} if manifest is not None else {}
    lost: dict[str, tuple[str, str]] = {}
    for record in done_files(store):
        problem = kept.output_problem(output_dir, record)
        if problem is None:
            continue
        what = kept.FILE_MISSING if problem == kept.MISSING else kept.FILE_CHANGED
        if kept.has_kept_render(output_dir, record, in_place=False):
            fate = "the next run restores its kept render (0 credits)"
        elif kept.link_alive(record.task_id, record.link_expires_at):
            fate = "the next run downloads it again from its task (0 credits)"
        else:
            take = takes.get(record.key)
            cost = (kept.rerender_cost(manifest, take, record.credits)
                    if manifest is not None and take is not None
                    else advice.cost(record.credits, unit=unit_of(manifest.api.provider)
                                     if manifest is not None else CREDITS)
                    if record.credits is not None else "an unknown amount")
            fate = (f"no kept render or live task can bring it back; `shotrun run "
                    f"--retry-failed` renders it again and spends {cost}")
        lost[record.key] = (what, fate)
    return lost
