"""``shotrun status MANIFEST [--json] [--only ID|TAG]``: what every take is doing, from the store.

It opens the state store read-only, so it works beside a live run (WAL readers never block the
writer, and no lock is taken) and answers within the moment. It still answers when the
manifest no longer loads (edited into an invalid state mid-run): it then shows every take the
store holds, with a warning. Exit 0 whenever the store could be read (or no run happened yet);
2 for a manifest that does not load and never ran (nothing to show), whose output folder
cannot even be found or is a file, or an unreadable store.

A done take whose file is missing or changed on disk (one ``stat`` per take; a hash only for
a file touched since it was verified) shows as ``missing``, with what the next run does about
it (restore a kept render, download it again, or nothing without ``--retry-failed``, which
spends), and the exit code is then 1. A take being rendered anew whose earlier render still
sits at its path shows that file as its output, "(previous render)".

``--json`` prints ``{"manifest", "provider", "last_run_provider", "state", "run",
"running_pid", "warning", "takes": [trace records], "totals", "next_run"}``
(``next_run``: failed takes a run collects for nothing, and those it would create anew, with
their estimated credits); the trace record's fields
are listed in :mod:`runner.state.trace`, and each take also has ``chosen`` (the take
``export`` ships and ``from_shot`` frames come from), ``picked`` (chosen by ``shotrun
pick``), ``from_shots`` (the shots it starts from) and ``note`` (the reviewer's note,
``shotrun review``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core import advice
from runner.core.bulk import paused_gc
from runner.core.errors import EXIT_FAILED, EXIT_OK, Location, ManifestError, Problem, UsageError
from runner.core.model import Manifest
from runner.core.money import CREDITS, MONEY_UNITS, Figure, format_amount, unit_of
from runner.core.redact import redact
from runner.core.selection import names_take
from runner.core.words import count, plural
from runner.media.observed import distinct_size_warnings
from runner.state import StateStore, TakeStatus, store_path_for
from runner.state.continuity import chosen_takes, frame_sources, picks, source_changes
from runner.state.dbfile import writer_pid
from runner.state.decide import decide
from runner.state.notes import current_notes, notes
from runner.state.trace import new_trace_record, read_traces, record_figure, trace_totals
from runner.wire.payload import estimate_credits
from runner.wire.specs import add_flag as add_provider_flag
from runner.wire.specs import other_provider_note

if TYPE_CHECKING:  # rich costs a tenth of a second to import: only small tables use it
    from rich.table import Table

MISSING = "missing"  # done, but its file is not on disk as verified: counted apart, exit 1
_STYLE = {
    "done": "green", "failed": "red", "ambiguous": "magenta", "held": "magenta",
    "submitted": "cyan", "completed": "cyan", "downloading": "cyan", "submitting": "yellow",
    "new": "dim", MISSING: "red",
}
# The reason shown for a take the manifest changed after it was rendered (or submitted).
STALE = "changed since: the next run renders it again"


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
    parser.set_defaults(func=run)


def _fallback_output_dir(path: Path, error: ManifestError) -> Path:
    """The output folder of a manifest that does not load, from its two plain fields."""
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
    return where if where.is_absolute() else path.absolute().parent / where


def _load(path: Path, provider: str | None = None) -> tuple[Manifest | None, Path, str | None]:
    """(manifest or None, output folder, warning); ``provider`` as ``--provider``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    try:
        manifest = load_manifest(path, provider, sends=False)  # status sends nothing
    except ManifestError as exc:
        output_dir = _fallback_output_dir(path, exc)
        if not store_path_for(output_dir).is_file():  # invalid, and never ran: nothing to show
            raise ManifestError([*exc.problems, Problem(
                Location(str(path)), "", "does not load and has never run, so there is no "
                "status to show; fix the problems above (shotrun validate FILE)")]) from None
        warning = (f"shotrun: warning: {path} does not load any more ({exc}); showing what "
                   "the state store holds")
        return None, output_dir, warning
    check_output_dir(manifest)  # else a file there would read as "no run yet"
    return manifest, manifest.output_dir, None


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


def _gather(manifest_path: Path, only: Sequence[str], provider: str | None) -> dict[str, Any]:
    manifest, output_dir, warning = _load(manifest_path, provider)
    store_path = store_path_for(output_dir)
    records: dict[str, dict[str, Any]] = {}
    chosen: dict[str, tuple[int, bool]] = {}
    life: dict[str, Any] = {"credits_committed": 0.0, "committed": {},
                            "ambiguous_submissions": 0}
    ran = store_path.is_file()
    last_provider: str | None = None
    stale: set[str] = set()
    failed_records: list[Any] = []  # full records of the failed takes only (few, mostly)
    if ran:
        with StateStore.open_readonly(store_path) as store:
            last_provider = store.last_provider()
            fingerprints = {t.key: t.fingerprint for t in manifest.takes} if manifest else {}
            traces, stored = read_traces(store, output_dir)  # one read for both
            for trace, record in zip(traces, stored, strict=True):
                records[record.key] = trace
                if fingerprints.get(record.key, record.fingerprint) != record.fingerprint:
                    stale.add(record.key)
            failed_records = [store.record(trace["id"]) for trace in traces
                              if trace["status"] == TakeStatus.FAILED.value]
            lost_files = _lost_files(store, output_dir, manifest)
            totals = store.totals()
            life = {key: totals[key] for key in life}
            chosen = chosen_takes(stored, picks(store), fingerprints or None)
            for key, text in current_notes(notes(store), stored).items():
                records[key]["note"] = text
            if manifest is not None:  # continuity: its source was rendered or picked anew
                stale.update(source_changes(store, manifest.takes))
                note = other_provider_note(last_provider, manifest.api.provider)
                if note is not None and warning is None:
                    warning = f"shotrun: warning: {note}"
        for key in stale:
            records[key]["reason"] = STALE
        for key, (problem, fate) in lost_files.items():  # done, but not on disk as verified
            records[key].update(status=MISSING, reason=problem, error=f"{problem}: {fate}")
        for trace in records.values():
            if trace["status"] == "failed" and trace["failure_kind"] == MISSING:
                trace["status"] = MISSING  # lost for good by an earlier run: still missing
            elif trace["output"] is None and trace["status"] != "done":
                trace["output"] = _previous_render(output_dir, trace)
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
    rows = [row for row in rows if _selected(row, base_ids, only)]
    _mark_chosen(rows, chosen, manifest)
    selected = {row["id"] for row in rows} - stale if ran else set()
    failed = [record for record in failed_records if record.key in selected]
    unit = unit_of(manifest.api.provider) if manifest is not None else None
    totals = {**trace_totals(_in_unit(rows, unit)), **life,
              # The cap of the unit the provider bills in, as plan and the summary say it.
              "max_credits": manifest.budget.cap(unit) if manifest and unit else None,
              "caps": _caps(manifest), "unit": unit,
              "not_in_manifest": dropped}
    return {
        "manifest": str(manifest_path),
        # The provider the manifest was read for (its takes' fingerprints include it), and
        # the one the last run rendered with.
        "provider": manifest.api.provider if manifest is not None else None,
        "last_run_provider": last_provider,
        "state": str(store_path),
        "run": ran,
        "running_pid": writer_pid(store_path) if ran else None,
        "warning": warning,
        "takes": rows,
        "totals": totals,
        "next_run": _next_run(failed, manifest),
    }


def _next_run(records: Sequence[Any], manifest: Manifest | None) -> dict[str, Any]:
    """What a run would do with the failed takes, and what it spends (``next_run``).

    ``collects``: failed takes whose paid task a plain ``shotrun run`` collects for nothing;
    ``retry_failed_creates``: those only ``--retry-failed`` renders anew, with the estimate.
    Judged by the run's own rule (:func:`runner.state.decide.decide`) as of now.
    """
    rates = manifest.budget.rates if manifest is not None else {}
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
    from runner.providers.session import resolve_config  # only with a manifest: not on every status

    try:
        return resolve_config(manifest).uses_emulator
    except UsageError:  # run will say what is wrong; no promise either way
        return False


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


_COLUMNS = ("take", "status", "task id", "att.", "credits", "output", "last error")
# Above this many takes, aligned plain lines instead of a rich table: rich lays out every cell
# (about 0.8 ms a row), so 20,000 takes took 16 s to print; plain lines take a few ms.
PLAIN_ABOVE = 500


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    """One take's cells, in :data:`_COLUMNS` order."""
    status = row["status"]
    if status == "failed" and row["failure_kind"]:
        status = f"failed ({row['failure_kind']})"
    elif status == "submitted" and row["progress"]:
        status = f"submitted {row['progress']}%"
    if row["reason"] == STALE:
        status += ", changed since"
    if row["picked"]:
        status += ", picked"  # chosen with `shotrun pick`
    elif row["chosen"]:
        status += ", chosen"  # the first finished: what export ships until a pick
    if row.get("size_warning") and row["status"] == "done":
        status += f", {row['size_warning']}"  # recorded, not refused (runner.media.observed)
    error = row["error"]
    output = row["output"] or "-"
    if row["output"] and row["status"] not in ("done", MISSING):
        output += " (previous render)"  # kept in place until the new one is verified
    return (row["id"], status, row["task_id"] or "-", str(row["attempts"]),
            _cost_cell(record_figure(row)), output,
            redact(error) if error else "")


def _cost_cell(figure: Figure) -> str:
    """The credits column: ``40.5``, ``~40.5`` for an estimate; another unit than the
    gateway's credits is named (``2.4 Kling units``, ``~$0.34``); ``-`` when unknown."""
    if figure.amount is None:
        return "-"
    shown = format_amount(figure.amount, None if figure.unit == CREDITS else figure.unit)
    return f"~{shown}" if figure.estimated else shown


def _table(rows: Sequence[dict[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, expand=False)
    for column in _COLUMNS[:-1]:
        table.add_column(column, no_wrap=True)
    table.add_column(_COLUMNS[-1], overflow="fold")
    previous_shot = None
    for row in rows:
        if previous_shot is not None and row["shot"] != previous_shot:
            table.add_section()
        previous_shot = row["shot"]
        cells = [Text(cell) for cell in _cells(row)]
        cells[1].stylize(_STYLE.get(row["status"], ""))
        table.add_row(*cells)
    return table


def _plain(rows: Sequence[dict[str, Any]]) -> str:
    """The same columns as :func:`_table`, as aligned plain lines (for thousands of takes)."""
    lines = [_COLUMNS, *map(_cells, rows)]
    widths = [max(map(len, column)) for column in zip(*lines, strict=True)][:-1]
    # One format string for every line: the last column is not padded, then the line is
    # right-stripped (a row with no error ends without trailing spaces).
    template = "  ".join([*(f"{{:<{width}}}" for width in widths), "{}"])
    return "\n".join([template.format(*line).rstrip() for line in lines])


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
    if len(document["takes"]) > PLAIN_ABOVE:
        lines.append(redact(_plain(document["takes"])))
    elif document["takes"]:
        from rich.console import Console

        # A pipe or a file gets wide lines rather than ids folded over three rows.
        console = Console(file=sys.stdout, highlight=False,
                          width=None if sys.stdout.isatty() else 160)
        _print_lines(lines)
        lines = []
        console.print(_table(document["takes"]))
    lines.extend(_next_run_lines(document["next_run"], args.manifest,
                                 document["totals"].get("unit")))
    lines.append(_summary(document["totals"]))
    for warning, takes in distinct_size_warnings(
            row for row in document["takes"] if row["status"] == "done"):
        lines.append(f"warning: {count(takes, 'take')} done at {warning}")
    _print_lines(lines)
    return EXIT_FAILED if document["totals"].get(MISSING) else EXIT_OK


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
    from runner.state import kept
    from runner.state.ondisk import done_files

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


def _print_lines(lines: Sequence[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
