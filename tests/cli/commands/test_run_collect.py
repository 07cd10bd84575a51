"""A paid task stays collectable (issue 21, part 1): a result shotrun could not save is
collected by the next run from the same task, never created again, by shotrun or its advice.

Each scenario runs the CLI (``cli.main`` in a worker thread) against the emulator, or a relay
in front of it that misbehaves on the first run only, and ends with the shared money checks of
:mod:`tests.helpers.promises`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from runner import cli
from runner.cli.summary import format_summary
from runner.emulator import run_emulator
from runner.scheduler.snapshot import Cost, NextRun, RunSummary
from tests.helpers.promises import (
    assert_lines_bounded,
    assert_paid_once,
    assert_secret_absent,
    assert_store_bounded,
)
from tests.helpers.run import (
    FAST_FLAGS,
    KEY,
    decodes,
    fast_emulator,
    main_in_thread,
    store_rows,
    wait_for,
    write_manifest,
)
from tests.helpers.torture import relay, serve, url_of

FOUR = "".join(f"  - id: s{n}\n    prompt: \"collect shot {n}\"\n" for n in range(4))
TAKES = 4
# The demo's rates: 720p, 3 s a take -> 8.1 credits/s x 3 s each.
CREDITS_EACH = 24.3


def store_of(root: Path) -> Path:
    return root / "out" / ".shotrun" / "state.sqlite"


def statuses(root: Path) -> dict[str, tuple[str, str | None, str | None]]:
    with sqlite3.connect(f"file:{store_of(root)}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, status, failure_kind, last_error_code FROM takes")
        return {key: (status, kind, code) for key, status, kind, code in rows}


def all_on_disk(root: Path) -> None:
    for n in range(TAKES):
        decodes(root / "out" / f"s{n}" / "take-1.mp4")


def promises(root: Path, accepted: int, *texts: str) -> None:
    assert_paid_once(accepted, TAKES, store_of(root))
    assert_lines_bounded(*texts)
    assert_store_bounded(store_of(root))
    assert_secret_absent(root / "out", KEY)


def assert_collected(root: Path, code: int, out: str, accepted: int, texts: list[str]) -> None:
    """The last run left every take done on disk, and the server made one task per take."""
    assert code == 0 and "done: 4/4" in out, out
    assert accepted == TAKES
    all_on_disk(root)
    promises(root, accepted, *texts)


class Runs:
    """The CLI run after run against one base URL; what each printed is kept."""

    def __init__(self, manifest: Path, base_url: str,
                 capsys: pytest.CaptureFixture[str]) -> None:
        self.args = ["run", str(manifest), "--base-url", base_url, *FAST_FLAGS]
        self.capsys = capsys
        self.texts: list[str] = []

    async def __call__(self, *extra: str) -> tuple[int, str]:
        code = await main_in_thread([*self.args, *extra])
        captured = self.capsys.readouterr()
        self.texts += [captured.out, captured.err]
        return code, captured.out


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    yield


@pytest.mark.parametrize("provider", ["gateway", "fal", "kling"])
async def test_a_result_over_the_size_limit_is_collected_by_the_next_run_not_paid_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None,
        monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    """The issue's scenario: ``run --max-result-size 1K; run; run --retry-failed``.

    Before: 8 creations, 4 billed twice. Now: 4 creations; the second run (limit lifted)
    collects all 4 from their tasks; the third has nothing to do. The same on every
    provider's wire format.
    """
    for name in ("FAL_KEY", "KLING_SECRET_KEY"):
        monkeypatch.setenv(name, KEY)
    monkeypatch.setenv("KLING_ACCESS_KEY", "AK-collect-0123456789")
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator(), provider=provider) as emulator:
        runs = Runs(manifest, emulator.base_url, capsys)
        runs.args += ["--provider", provider]
        code, out = await runs("--max-result-size", "1K")
        assert code == 1 and emulator.stats()["accepted_tasks"] == TAKES
        assert {v[:3] for v in statuses(tmp_path).values()} == {
            ("failed", "collectable", "download_refused")}
        assert ("not collected yet: 4 paid takes; run again to collect them "
                "(spends nothing)") in out
        assert "--retry-failed" not in out and "new task" not in out
        code, out = await runs()
        assert code == 0 and "done: 4/4" in out
        assert emulator.stats()["accepted_tasks"] == TAKES
        all_on_disk(tmp_path)
        code, out = await runs("--retry-failed")
        assert code == 0 and "4 takes already done" in out
        accepted = emulator.stats()["accepted_tasks"]
    assert accepted == TAKES
    promises(tmp_path, accepted, *runs.texts)


async def test_retry_failed_collects_a_collectable_take_rather_than_creating_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator()) as emulator:
        runs = Runs(manifest, emulator.base_url, capsys)
        assert (await runs("--max-result-size", "1K"))[0] == 1
        code, out = await runs("--retry-failed")
        accepted = emulator.stats()["accepted_tasks"]
    assert out.count("download (not collected yet)") == TAKES
    assert_collected(tmp_path, code, out, accepted, runs.texts)


def _first_run_only(state: dict[str, bool], link: str) -> Any:
    """A body hook that points every result at ``link`` while ``state['bad']`` holds."""
    async def hook(request: web.Request, payload: bytes) -> bytes:
        data = json.loads(payload)
        if state["bad"] and isinstance(data, dict) and data.get("results"):
            data["results"] = [link.replace("{origin}", str(request.url.origin()))
                               for _ in data["results"]]
        return json.dumps(data).encode()
    return hook


def _misbehaving(state: dict[str, bool]) -> Any:
    """Answers a redirect loop at /loop, and HTML for every result while ``bad`` holds."""
    async def hook(request: web.Request, body: bytes) -> web.StreamResponse | None:
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if state["html"] and request.path.startswith("/results/"):
            return web.Response(body=b"<html>maintenance</html>" * 50,
                                content_type="video/mp4")
        return None
    return hook


@asynccontextmanager
async def _relay(upstream: str, link: str | None, html: bool) -> Any:
    state = {"bad": link is not None, "html": html}
    server = await serve(relay(upstream, _misbehaving(state),
                               _first_run_only(state, link or "")))
    try:
        yield url_of(server), state
    finally:
        await server.close()


@pytest.mark.parametrize(("link", "html", "code_word"), [
    pytest.param("ftp://127.0.0.1/x.mp4", False, ("download_refused", "ftp"), id="ftp-link"),
    pytest.param("file:///etc/passwd", False, ("download_refused", "file"), id="file-link"),
    pytest.param("{origin}/loop", False, ("download_refused", "redirect"), id="redirect-loop"),
    pytest.param(None, True, ("verify_failed", "rejected"), id="not-a-video"),
])
async def test_each_refused_result_fails_collectably_and_the_next_run_collects_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None,
        link: str | None, html: bool, code_word: tuple[str, str]) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator()) as emulator, \
            _relay(emulator.base_url, link, html) as (base, state):
        runs = Runs(manifest, base, capsys)
        code, out = await runs("--json")
        summary = json.loads(out)
        assert code == 1 and emulator.stats()["accepted_tasks"] == TAKES
        code_name, word = code_word
        assert len(summary["failed"]) == TAKES
        assert all(f["kind"] == "collectable" and f["code"] == code_name
                   and word in f["message"].lower() for f in summary["failed"]), summary
        assert sorted(summary["next_run"]["collects"]) == [f"s{n}/take-1" for n in range(4)]
        assert summary["next_run"]["retry_failed_creates"]["new_tasks"] == 0
        state["bad"] = state["html"] = False  # the provider serves it properly now
        code, out = await runs()
        accepted = emulator.stats()["accepted_tasks"]
    assert not list((tmp_path / "out").rglob("*.rejected.mp4")) or html
    assert_collected(tmp_path, code, out, accepted, runs.texts)


async def test_a_task_the_provider_no_longer_knows_needs_a_new_creation_priced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator()) as emulator:
        runs = Runs(manifest, emulator.base_url, capsys)
        assert (await runs("--max-result-size", "1K"))[0] == 1
        first = emulator.stats()["accepted_tasks"]
    # A new emulator: the tasks of the first are unknown there (as after their lifetime).
    async with run_emulator(fast_emulator()) as emulator:
        runs.args[3] = emulator.base_url
        code, out = await runs()
        assert code == 1 and emulator.stats()["accepted_tasks"] == 0, out
        assert {v[:2] for v in statuses(tmp_path).values()} == {("failed", "permanent")}
        assert "it needs a new creation" in out
        assert ("needs a new creation: 4 takes; --retry-failed would create 4 new tasks, "
                f"about {TAKES * CREDITS_EACH:.1f} credits") in out
        assert "not collected yet:" not in out
        # Asked for, the new creations are made; nothing else is.
        code, out = await runs("--retry-failed")
        second = emulator.stats()["accepted_tasks"]
    assert code == 0 and "done: 4/4" in out, out
    assert first == TAKES and second == TAKES
    all_on_disk(tmp_path)
    assert_lines_bounded(*runs.texts)
    assert_secret_absent(tmp_path / "out", KEY)


async def test_a_task_the_provider_says_failed_needs_a_new_creation_priced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    manifest.write_text(manifest.read_text().replace(
        "render: cached", "render: cached, failure_rate: 1.0, "
        "failure_codes: [content_policy_violation]"))
    code = await main_in_thread(["run", str(manifest), *FAST_FLAGS])
    out = capsys.readouterr().out
    assert code == 1
    assert ("needs a new creation: 4 takes; --retry-failed would create 4 new tasks, "
            f"about {TAKES * CREDITS_EACH:.1f} credits") in out, out
    code = await main_in_thread(["run", str(manifest), *FAST_FLAGS])
    out = capsys.readouterr().out
    assert code == 1 and "(failed before)" in out
    assert ("--retry-failed would create 4 new tasks, "
            f"about {TAKES * CREDITS_EACH:.1f} credits") in out, out


async def test_past_the_result_lifetime_a_take_needs_a_new_creation_and_every_command_prices_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    total = f"about {TAKES * CREDITS_EACH:.1f} credits"
    async with run_emulator(fast_emulator()) as emulator:
        monkeypatch.setenv("SHOTRUN_BASE_URL", emulator.base_url)  # status: not built in
        runs = Runs(manifest, emulator.base_url, capsys)
        assert (await runs("--max-result-size", "1K"))[0] == 1
        # Collectable: plan and status say a plain run collects them for nothing.
        assert cli.main(["plan", str(manifest)]) == 0
        out = capsys.readouterr().out
        assert "in flight: 4 takes (already paid; `shotrun run` collects them, spends " \
               "nothing)." in out
        assert out.count("not collected yet") == TAKES
        assert cli.main(["status", str(manifest)]) == 0
        out = capsys.readouterr().out
        assert (f"not collected yet: 4 paid takes; `shotrun run {manifest}` collects them "
                "(spends nothing)") in out
        # The gateway's links live 24 h after the task finished: say that time has passed.
        with sqlite3.connect(store_of(tmp_path)) as conn:
            conn.execute("UPDATE takes SET link_expires_at = 1.0")
        conn.close()
        assert cli.main(["plan", str(manifest)]) == 0
        out = capsys.readouterr().out
        assert out.count("link lifetime over") == TAKES
        assert ("not run: 4 takes (held or failed); `shotrun run --retry-failed` would create "
                f"4 new tasks, {total}.") in out
        assert cli.main(["status", str(manifest)]) == 0
        out = capsys.readouterr().out
        assert (f"failed: `shotrun run {manifest} --retry-failed` would create 4 new tasks, "
                f"{total}") in out
        code, out = await runs()
        assert code == 1 and emulator.stats()["accepted_tasks"] == TAKES, out
        assert "link_lifetime_over: " in out and "it needs a new creation" in out
        assert (f"needs a new creation: 4 takes; --retry-failed would create 4 new tasks, "
                f"{total}") in out
        code, out = await runs("--retry-failed")
        accepted = emulator.stats()["accepted_tasks"]
    assert code == 0 and "done: 4/4" in out, out
    assert accepted == 2 * TAKES  # asked for, after the lifetime: the new creations only
    all_on_disk(tmp_path)
    assert_lines_bounded(*runs.texts)
    assert_secret_absent(tmp_path / "out", KEY)


def _summary(**changes: Any) -> RunSummary:
    fields: dict[str, Any] = {
        "total": 4, "done": 0, "skipped": 0, "failed": (), "ambiguous": 0, "held": (),
        "not_started": (), "in_flight": (), "credits_run": 0.0, "credits_total": 0.0,
        "max_credits": None, "wall_time": 1.0}
    fields.update(changes)
    return RunSummary(**fields)


def test_every_suggestion_of_the_run_summary_says_what_it_spends() -> None:
    one = ("s0/take-1",)
    two = ("s1/take-1", "s2/take-1")
    held = format_summary(_summary(held=one, next_run=NextRun(held=Cost(one, 24.3))))
    assert ("held (a creation's answer was lost; not resubmitted): s0/take-1; --retry-failed "
            "resubmits them (creates 1 new task, about 24.3 credits; the lost ones may have "
            "been billed too)") in held
    left = _summary(in_flight=two, next_run=NextRun(resubmits=Cost(two, 48.6)))
    assert ("left at the built-in emulator: 2 (it stopped with this run: the next run submits "
            "them again, creates 2 new tasks, about 48.6 credits at the emulator)"
            ) in format_summary(left, built_in=True)
    assert "still at the gateway: 2; run again to collect them (spends nothing)" \
        in format_summary(left)
    failed = _summary(next_run=NextRun(collects=one, creates=Cost(two, 48.6),
                                       retry_creates=Cost(one, 0.0, unpriced=1)))
    text = format_summary(failed)
    assert "not collected yet: 1 paid take; run again to collect them (spends nothing)" in text
    assert ("to render again: 2 takes; run again to retry them (creates 2 new tasks, about "
            "48.6 credits)") in text
    assert ("needs a new creation: 1 take; --retry-failed would create 1 new task, cost "
            "unknown (no rate in budget.rates)") in text


async def test_editing_a_take_whose_paid_result_is_not_collected_yet_warns_before_and_after(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator()) as emulator:
        runs = Runs(manifest, emulator.base_url, capsys)
        assert (await runs("--max-result-size", "1K"))[0] == 1
        write_manifest(tmp_path, FOUR.replace("collect shot 0", "collect shot zero"))
        assert cli.main(["plan", str(manifest)]) == 0
        out = capsys.readouterr().out
        head = "warning: s0/take-1 changed while its task ("
        assert head in out and (") was paid but not collected yet: a run would abandon that "
                                "paid render, not collect it") in out
        code, out = await runs()
    assert code == 0
    assert "s0/take-1 changed while its task (" in runs.texts[-1]  # run warns on stderr
    assert "was paid but not collected yet: that paid render is abandoned" in runs.texts[-1]


def test_the_commands_that_say_run_it_first_say_that_it_spends(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    assert cli.main(["status", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert (f"Start one with: shotrun run {manifest} (it spends credits; `shotrun plan "
            f"{manifest}` shows how many, spends nothing)") in out
    first = ("run it first (`shotrun run MANIFEST`, which spends credits; `shotrun plan "
             "MANIFEST` shows how many and sends nothing)")
    assert cli.main(["export", str(manifest), str(tmp_path / "cut")]) == 2
    assert first in capsys.readouterr().err
    assert cli.main(["pick", str(manifest), "s0", "1"]) == 2
    assert first in capsys.readouterr().err


async def test_a_refused_key_says_running_again_collects_what_is_paid_for_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", "sk-not-the-emulators-key-000000")
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator()) as emulator:
        code = await main_in_thread(["run", str(manifest), "--base-url", emulator.base_url,
                                     *FAST_FLAGS])
    assert code == 1
    assert ("set it to a valid key and run again (it collects what is paid for without "
            "spending and creates only what was not sent)") in capsys.readouterr().err


@pytest.mark.parametrize("built_in", [False, True])
async def test_ctrl_c_says_what_the_next_run_spends_on_the_tasks_left(
        tmp_path: Path, built_in: bool) -> None:
    shots = "".join(f"  - id: s{n}\n    prompt: \"interrupted {n}\"\n" for n in range(4))
    manifest = write_manifest(tmp_path, shots, api="  concurrency: 2\n")
    if built_in:  # tasks that never finish at the in-process emulator
        manifest.write_text(manifest.read_text().replace("processing_time: 0.03",
                                                         "processing_time: 60"))
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    store = store_of(tmp_path)
    async with run_emulator(fast_emulator(processing_time=60)) as emulator:
        base = [] if built_in else ["--base-url", emulator.base_url]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runner", "run", str(manifest), *base, *FAST_FLAGS, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        submitted = lambda: sum(  # noqa: E731
            1 for _, status in store_rows(store) if status == "submitted") >= 2
        assert await wait_for(submitted, proc)
        proc.send_signal(signal.SIGINT)
        out_b, err_b = await proc.communicate()
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 130, err
    if built_in:
        assert ("the built-in emulator stops with this run, so the next run submits its tasks "
                "in flight again (new tasks at the emulator)") in err
        assert ("left at the built-in emulator: 2 (it stopped with this run: the next run "
                "submits them again, creates 2 new tasks, about 48.6 credits at the "
                "emulator)") in out
    else:
        assert ("tasks in flight keep rendering at the gateway and the next run collects them "
                "(spends nothing)") in err
        assert "still at the gateway: 2; run again to collect them (spends nothing)" in out
    assert_lines_bounded(out, err)


def test_at_the_built_in_emulator_a_result_not_collected_is_gone_with_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The in-process emulator's tasks end with the run: the summary does not promise a free
    collection, and ``--retry-failed`` renders them anew in one run."""
    manifest = write_manifest(tmp_path, FOUR)
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--max-result-size", "1K"]) == 1
    out = capsys.readouterr().out
    assert ("not collected: 4 takes (the built-in emulator stopped with this run, and their "
            "tasks with it); --retry-failed renders them anew (creates 4 new tasks, about "
            f"{TAKES * CREDITS_EACH:.1f} credits at the emulator)") in out
    assert "spends nothing" not in out
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--retry-failed"]) == 0
    assert "done: 4/4" in capsys.readouterr().out
    all_on_disk(tmp_path)


async def test_retry_failed_renders_anew_at_once_a_task_the_provider_no_longer_knows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator()) as emulator:
        runs = Runs(manifest, emulator.base_url, capsys)
        assert (await runs("--max-result-size", "1K"))[0] == 1
    async with run_emulator(fast_emulator()) as emulator:  # knows none of those tasks
        runs.args[3] = emulator.base_url
        code, out = await runs("--retry-failed")
        accepted = emulator.stats()["accepted_tasks"]
    assert code == 0 and "done: 4/4" in out, out
    assert accepted == TAKES  # asked for: one new task each, in this run
    all_on_disk(tmp_path)


def test_status_after_the_built_in_emulator_does_not_promise_a_free_collection(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, FOUR)
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--max-result-size", "1K"]) == 1
    capsys.readouterr()
    assert cli.main(["status", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert ("not collected: 4 takes (the built-in emulator's tasks ended with the run that "
            f"made them); `shotrun run {manifest} --retry-failed` renders them anew (creates "
            f"4 new tasks, about {TAKES * CREDITS_EACH:.1f} credits at the emulator)") in out
    assert "spends nothing" not in out


@pytest.mark.parametrize("provider", ["kling", "fal"])
def test_the_advice_prices_new_tasks_in_the_providers_own_unit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        provider: str) -> None:
    """What ``--retry-failed`` would spend is the estimate plan makes, in Kling units or fal
    dollars: never the gateway credits' figure labelled with another unit."""
    for name in ("FAL_KEY", "KLING_SECRET_KEY"):
        monkeypatch.setenv(name, KEY)
    monkeypatch.setenv("KLING_ACCESS_KEY", "AK-collect-0123456789")
    manifest = write_manifest(tmp_path, FOUR)
    assert cli.main(["plan", str(manifest), "--provider", provider, "--json"]) == 0
    will_run = json.loads(capsys.readouterr().out)["this_run"]["will_run"]
    assert will_run["takes"] == TAKES
    expected = {"kling": f"about {will_run['credits']:.1f} Kling units",
                "fal": f"about ${will_run['credits']:.2f}"}[provider]
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--provider", provider,
                     "--max-result-size", "1K"]) == 1
    out = capsys.readouterr().out
    assert f"creates 4 new tasks, {expected} at the emulator" in out, out
    assert cli.main(["status", str(manifest), "--provider", provider]) == 0
    out = capsys.readouterr().out
    assert f"creates 4 new tasks, {expected} at the emulator" in out, out
