"""Money figures that agree, each in its own unit (issue 21, part 6; failure path 8).

After a run on each provider's emulator, the summary, ``status --json``, ``plan --json``, the
report's HTML and the review page show the same figure per take and in total, with its unit;
each unit's cap binds only its own unit; after a SIGKILL with the built-in emulator, ``plan``
says its in-flight takes are created again; the demo's rates are its emulator's prices.
Everything runs through ``runner.cli.main`` (or ``python -m runner``) against the emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from runner.core.money import (
    CREDITS,
    UNITS,
    USD,
    Figure,
    format_amount,
    take_figure,
    unit_of,
    unit_word,
)
from runner.emulator import EmulatorSettings, run_emulator
from runner.manifest import load_manifest
from runner.state import StateStore
from runner.views.outlook import ENDED_WITH_EMULATOR
from runner.views.review.page import Situation, build
from tests.helpers.promises import assert_lines_bounded, assert_paid_once
from tests.helpers.providers import keys
from tests.helpers.report_page import Node, parse
from tests.helpers.run import (
    FAST_FLAGS,
    KEY,
    THREE,
    fast_emulator,
    main_in_thread,
    store_rows,
    wait_for,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[3]
# A take of THREE: 720p, 3 s, no audio, in each provider's unit at the emulator's prices.
PER_TAKE = {"gateway": (CREDITS, 24.3), "kling": (UNITS, 1.8), "fal": (USD, 0.252)}


def _key(monkeypatch: pytest.MonkeyPatch, provider: str) -> str:
    if provider == "gateway":
        monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
        monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
        return KEY
    return keys(monkeypatch, provider)


def _json(capsys: pytest.CaptureFixture[str], args: list[str]) -> Any:
    assert cli.main(args) == 0
    return json.loads(capsys.readouterr().out)


def _totals(root: Node) -> dict[str, tuple[str, str]]:
    """The report's total cells: label -> (figure, estimate note)."""
    found = {}
    for cell in root.find_all("div", "total"):
        notes = cell.find_all("small")
        found[cell.attrs["data-total"]] = (cell.find("b").text(),
                                           notes[0].text() if notes else "")
    return found


def _tile_costs(root: Node) -> dict[str, str]:
    """Per take key, the cost fact of its tile."""
    found = {}
    for tile in root.find_all("article"):
        facts = tile.find("dl")
        terms = [node.text() for node in facts.find_all("dt")]
        values = [node.text() for node in facts.find_all("dd")]
        found[tile.attrs["data-key"]] = dict(zip(terms, values, strict=False)).get("cost", "")
    return found


@pytest.mark.parametrize("provider", ["gateway", "kling", "fal"])
async def test_every_view_shows_the_same_figure_per_take_and_in_total(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected_key = _key(monkeypatch, provider)
    unit, each = PER_TAKE[provider]
    estimated = provider == "fal"  # fal's answers never say what a request cost
    manifest_path = write_manifest(tmp_path, THREE, api=f"  provider: {provider}\n")
    async with run_emulator(fast_emulator(api_key=expected_key), provider=provider) as emulator:
        code = await main_in_thread(["run", str(manifest_path), "--base-url", emulator.base_url,
                                     *FAST_FLAGS, "--json"])
        stats = emulator.stats()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    store = tmp_path / "out" / ".shotrun" / "state.sqlite"
    assert_paid_once(stats["accepted_tasks"], 3, store)
    assert_lines_bounded(captured.out, captured.err)
    # The emulator charged each task in the provider's own unit.
    assert stats["unit"] == unit and stats["credits_reserved"] == pytest.approx(3 * each)
    total = 3 * each

    # The run's summary: this run and the manifest's life, in the unit.
    assert summary["credits"]["unit"] == unit
    assert summary["credits"]["run"] == pytest.approx(total)
    assert summary["credits"]["total"] == pytest.approx(total)

    # status --json: each take's figure, its unit and whether it is an estimate.
    status = _json(capsys, ["status", str(manifest_path), "--json"])
    takes = {row["id"]: row for row in status["takes"]}
    assert len(takes) == 3
    for row in takes.values():
        assert (row["credits"], row["unit"], row["estimate"]) == (
            pytest.approx(each), unit, estimated)
    money = status["totals"]["money"]
    assert list(money) == [unit]  # never a sum across units
    assert money[unit]["total"] == pytest.approx(total)
    assert money[unit]["estimated" if estimated else "charged"] == pytest.approx(total)
    assert status["totals"]["committed"] == {unit: pytest.approx(total)}
    assert cli.main(["status", str(manifest_path)]) == 0
    table = capsys.readouterr().out
    cell = {CREDITS: "24.3", UNITS: "1.8 Kling units", USD: "~$0.25"}[unit]
    assert sum(1 for line in table.splitlines() if "/take-" in line and cell in line) == 3
    assert f"{format_amount(total, unit)} committed" in table

    # plan --json: a done take shows its record's figure, as status does.
    plan = _json(capsys, ["plan", str(manifest_path), "--json"])
    for item in plan["takes"]:
        assert item["cost"] == {"amount": pytest.approx(each), "unit": unit,
                                "estimated": estimated}
        assert item["credits"] == pytest.approx(takes[item["key"]]["credits"])
    assert plan["totals"]["money"][unit]["total"] == pytest.approx(total)
    assert plan["this_run"]["credits_spent"] == pytest.approx(total)
    assert plan["this_run"]["unit"] == unit

    # The report's HTML and the review page: the same figures, with the unit named.
    figure = Figure(each, unit, estimated)
    shown_total = format_amount(total, unit, bare=True, short=True)
    assert cli.main(["report", str(manifest_path)]) == 0
    capsys.readouterr()
    report = parse((tmp_path / "out" / "report.html").read_text(encoding="utf-8"))
    manifest = load_manifest(manifest_path)
    snapshot = build(manifest, "token", Situation())
    review = parse(snapshot.live + "".join(snapshot.sections.values()))
    for page in (report, review):
        cells = _totals(page)
        assert cells[unit_word(unit)][0] == shown_total
        assert ("estimate" in cells[unit_word(unit)][1]) is estimated
        assert "credits" not in cells or unit == CREDITS  # no 0 credits beside a fal run
        costs = _tile_costs(page)
        assert costs == dict.fromkeys(takes, figure.text())


async def test_each_units_cap_binds_only_its_own_unit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected_key = keys(monkeypatch, "kling")
    # A gateway cap of 1 credit is no cap on Kling units; 3.6 units fit two takes of 1.8.
    manifest_path = write_manifest(tmp_path, THREE, api="  provider: kling\n",
                                   budget="budget: {max_credits: 1, max_units: 3.6}\n")
    async with run_emulator(fast_emulator(api_key=expected_key), provider="kling") as emulator:
        code = await main_in_thread(["run", str(manifest_path), "--base-url", emulator.base_url,
                                     *FAST_FLAGS])
        stats = emulator.stats()
    out = capsys.readouterr().out
    assert code == 1  # one take left unsent by the cap
    assert stats["accepted_tasks"] == 2 and stats["credits_reserved"] == pytest.approx(3.6)
    assert "budget reached: 3.6 of 3.6 Kling units reserved" in out
    assert "raise budget.max_units or --max-credits" in out
    assert "Kling units: 3.6 this run, 3.6 of 3.6 in total" in out
    status = _json(capsys, ["status", str(manifest_path), "--json"])
    assert status["totals"]["committed"] == {"units": pytest.approx(3.6)}
    assert status["totals"]["credits_committed"] == 0  # nothing counted in gateway credits
    assert cli.main(["status", str(manifest_path)]) == 0
    assert "3.6 Kling units committed of 3.6" in capsys.readouterr().out


@pytest.mark.parametrize(("budget", "where"), [
    ("budget: {max_units: -1}\n", "budget.max_units"),
    ("budget: {max_usd: lots}\n", "budget.max_usd"),
    ("budget: {unit_rates: {720p: -0.6}}\n", "budget.unit_rates.720p"),
    ("budget: {usd_rates: {8k: 1}}\n", "budget.usd_rates"),
    ("budget: {max_unit: 3}\n", "budget"),
])
def test_bad_budget_settings_are_located_exit_2_and_nothing_written(
        budget: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path = write_manifest(tmp_path, THREE, budget=budget)
    for command in (["run", str(manifest_path), *FAST_FLAGS], ["plan", str(manifest_path)]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "shots.yaml:" in line]
        assert lines and where.split(".")[-1] in lines[0], err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_negative_max_credits_flag_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest_path), "--max-credits", "-1", *FAST_FLAGS]) == 2
    assert "--max-credits must not be negative" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_demos_rates_are_its_emulators_prices() -> None:
    demo = load_manifest(ROOT / "manifests" / "demo.yaml")
    settings = EmulatorSettings.from_mapping(dict(demo.api.emulator))
    for provider in ("gateway", "kling", "fal"):
        unit = unit_of(provider)
        estimates = dict(demo.budget.rates_for(unit))
        charges = dict(settings.prices(provider))
        assert estimates == charges, (provider, estimates, charges)


def test_the_demo_estimates_what_its_emulator_then_charges(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # From both sources: plan's estimate before the run, the emulator's charge after it.
    import shutil

    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    demo = tmp_path / "manifests" / "demo.yaml"
    before = _json(capsys, ["plan", str(demo), "--json"])
    estimates = {item["key"]: item["credits"] for item in before["takes"]}
    assert cli.main(["run", str(demo), *FAST_FLAGS, "--no-report"]) == 0
    capsys.readouterr()
    status = _json(capsys, ["status", str(demo), "--json"])
    charged = {row["id"]: row["credits"] for row in status["takes"]}
    assert not any(row["estimate"] for row in status["takes"])
    assert charged == {key: pytest.approx(value) for key, value in estimates.items()}


async def test_plan_after_a_sigkill_with_the_built_in_emulator_says_they_are_created_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shots = "".join(f"  - id: s{n}\n    prompt: \"built-in kill {n}\"\n" for n in range(3))
    manifest = write_manifest(tmp_path, shots, api="  concurrency: 2\n")
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        "processing_time: 0.03", "processing_time: 60"), encoding="utf-8")
    store = tmp_path / "out" / ".shotrun" / "state.sqlite"
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner", "run", str(manifest), *FAST_FLAGS, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    submitted = lambda: sum(  # noqa: E731
        1 for _, status in store_rows(store) if status == "submitted") >= 2
    assert await wait_for(submitted, proc)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    sent = sorted(key for key, status in store_rows(store) if status == "submitted")
    assert len(sent) == 2

    plan = _json(capsys, ["plan", str(manifest), "--json"])
    statuses = {item["key"]: item["status"] for item in plan["takes"]}
    for key in sent:
        assert statuses[key] == {"state": "will run", "reason": ENDED_WITH_EMULATOR}
    this_run = plan["this_run"]
    assert this_run["in_flight"]["takes"] == 0 and this_run["will_run"]["takes"] == 3
    # Their cost is counted again: what the killed run reserved, plus all three anew.
    assert this_run["credits_spent"] == pytest.approx(2 * 24.3)
    assert this_run["will_run"]["credits"] == pytest.approx(3 * 24.3)
    assert cli.main(["plan", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "created again: 2 takes" in out and "a run collects them" not in out

    # The run does what plan said: it creates them again (the new emulator knew nothing).
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        "processing_time: 60", "processing_time: 0.02"), encoding="utf-8")
    assert await main_in_thread(["run", str(manifest), *FAST_FLAGS, "--json",
                                 "--no-report"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["all_done"] and sorted(summary["resubmitted_unknown"]) == sent
    assert summary["credits"]["total"] == pytest.approx(plan["this_run"]["credits_after_run"])


@pytest.mark.parametrize(("amount", "unit", "shown"), [
    (32.4, CREDITS, "32.4 credits"),
    (2.4, UNITS, "2.4 Kling units"),
    (0.252, USD, "$0.25"),
    (0.004, USD, "$0.004"),
    (None, CREDITS, "?"),
    (float("inf"), CREDITS, "unreadable"),
    (float("nan"), USD, "unreadable"),
    (1e308, CREDITS, "1.0e+308 credits"),
])
def test_every_amount_is_printed_sanely(amount: float | None, unit: str, shown: str) -> None:
    assert format_amount(amount, unit) == shown
    assert len(format_amount(amount, unit, bare=True)) < 16


def test_a_nonsense_charge_falls_back_to_the_estimate() -> None:
    assert take_figure(float("inf"), 24.3, CREDITS) == Figure(24.3, CREDITS, True)
    assert take_figure(-5.0, None, UNITS) == Figure(None, UNITS, False)
    assert take_figure(32.4, 30.3, CREDITS) == Figure(32.4, CREDITS, False)


def _schema3_store(path: Path) -> None:
    """A store as shotrun wrote it before units (schema 3): a Kling, a gateway, a fal take."""
    import sqlite3

    from runner.state import dbfile as schema

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version in (1, 2, 3):
        step = schema.MIGRATIONS[version]
        assert isinstance(step, tuple)
        for statement in step:
            conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (3)")
    for key, payload in (("k/take-1", {"prompt": "p", "provider": "kling"}),
                         ("g/take-1", {"prompt": "p"}), ("f/take-1", {"provider": "fal"})):
        conn.execute("INSERT INTO takes (key, shot_id, take, status, fingerprint,"
                     " fingerprint_payload, credits_reserved, updated_at)"
                     " VALUES (?, ?, 1, 'done', 'fp', ?, 1.8, 0)",
                     (key, key.split("/")[0], json.dumps(payload)))
        conn.execute("INSERT INTO attempts (key, attempt, fingerprint, outcome, task_id,"
                     " credits_reserved, started_at) VALUES (?, 1, 'fp', 'created', 't', 1.8, 0)",
                     (key,))
    conn.close()


def test_an_older_store_gets_each_figures_unit(tmp_path: Path) -> None:
    # The migration reads the unit from the fingerprint payload (which names any provider
    # but the gateway), for takes and their attempts.
    path = tmp_path / "state.sqlite"
    _schema3_store(path)
    with StateStore.open(path) as store:
        units = {record.key: record.unit for record in store.records()}
        assert units == {"k/take-1": UNITS, "g/take-1": CREDITS, "f/take-1": USD}
        assert store.committed_by_unit() == {CREDITS: 1.8, UNITS: 1.8, USD: 1.8}
        assert store.credits_committed() == 1.8  # gateway credits only, never the sum


def test_status_and_plan_read_an_older_store_without_a_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # They used to answer "run `shotrun run` once to upgrade it": a command that spends.
    manifest_path = write_manifest(tmp_path, THREE)
    _schema3_store(tmp_path / "out" / ".shotrun" / "state.sqlite")
    status = _json(capsys, ["status", str(manifest_path), "--json"])
    assert status["totals"]["committed"] == {CREDITS: 1.8, UNITS: 1.8, USD: 1.8}
    assert status["totals"]["not_in_manifest"] == 3
    plan = _json(capsys, ["plan", str(manifest_path), "--json"])
    assert plan["this_run"]["credits_spent"] == pytest.approx(1.8)  # the gateway's only


def test_a_provider_switch_keeps_each_units_ledger_apart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The lifetime budget once added gateway credits and Kling units into one number
    # ("461.7 of 500"): each unit now has its own ledger and its own cap.
    manifest_path = write_manifest(tmp_path, THREE,
                                   budget="budget: {max_credits: 100, max_units: 10}\n")
    first = _json(capsys, ["run", str(manifest_path), *FAST_FLAGS, "--json", "--no-report"])
    assert first["credits"] == {"run": pytest.approx(72.9), "total": pytest.approx(72.9),
                                "max": 100, "unit": CREDITS}
    keys(monkeypatch, "kling")
    assert cli.main(["run", str(manifest_path), "--provider", "kling", *FAST_FLAGS,
                     "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "Kling units: 5.4 this run, 5.4 of 10 in total" in out
    status = _json(capsys, ["status", str(manifest_path), "--provider", "kling", "--json"])
    assert status["totals"]["committed"] == {CREDITS: pytest.approx(72.9),
                                             UNITS: pytest.approx(5.4)}
    assert status["totals"]["caps"] == {CREDITS: 100, UNITS: 10}
    assert list(status["totals"]["money"]) == [UNITS]  # the current takes: Kling's
    assert cli.main(["status", str(manifest_path), "--provider", "kling"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "72.9 credits committed of 100; 5.4 Kling units committed of 10" in line
    plan = _json(capsys, ["plan", str(manifest_path), "--provider", "kling", "--json"])
    assert plan["this_run"]["credits_spent"] == pytest.approx(5.4)  # units, not 78.3


async def test_a_rebuilt_store_keeps_each_figure_in_its_unit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The sidecars and the intents journal carry the unit: a Kling store lost and rebuilt
    # from the folder still counts Kling units, never gateway credits.
    expected_key = keys(monkeypatch, "kling")
    manifest_path = write_manifest(tmp_path, THREE, api="  provider: kling\n",
                                   budget="budget: {max_credits: 1, max_units: 100}\n")
    async with run_emulator(fast_emulator(api_key=expected_key), provider="kling") as emulator:
        args = ["run", str(manifest_path), "--base-url", emulator.base_url, *FAST_FLAGS]
        assert await main_in_thread(args) == 0
        store = tmp_path / "out" / ".shotrun" / "state.sqlite"
        for name in (store.name, store.name + "-wal", store.name + "-shm"):
            (store.parent / name).unlink(missing_ok=True)
        assert await main_in_thread(args) == 0
        stats = emulator.stats()
    assert stats["accepted_tasks"] == 3  # the first run's: the rebuild created nothing
    capsys.readouterr()
    status = _json(capsys, ["status", str(manifest_path), "--json"])
    assert status["totals"]["committed"] == {"units": pytest.approx(3 * 1.8)}
    assert status["totals"]["credits_committed"] == 0
