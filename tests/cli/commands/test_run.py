"""``shotrun run`` end to end: the CLI against the built-in or an in-test emulator.

The emulator runs in the test's event loop (or is built in); the command runs through
``cli.main`` in a worker thread, or as a real ``python -m runner`` subprocess when the test
kills it. Waiting is always on a condition (emulator counters, store rows), never a sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from runner import cli
from runner.cli.summary import format_summary
from runner.emulator import run_emulator
from runner.scheduler.snapshot import RunSummary
from tests.helpers.run import (
    FAST_FLAGS,
    KEY,
    THREE,
    decodes,
    fast_emulator,
    main_in_thread,
    store_rows,
    wait_for,
    write_manifest,
)


def test_demo_manifest_runs_end_to_end_on_the_built_in_emulator(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "s01/take-1" in out and "(new)" in out
    assert "done: 3/3" in out and "wall time" in out
    for name in ("s01/take-1.mp4", "s01/take-2.mp4", "s02/take-1.mp4"):
        assert decodes(tmp_path / "out" / name) == (1280, 720)
        assert (tmp_path / "out" / name).with_suffix(".json").is_file()
    run_log = tmp_path / "out" / ".shotrun" / "run.log"
    assert run_log.stat().st_mode & 0o777 == 0o600
    events = [json.loads(line)["event"] for line in run_log.read_text().splitlines()]
    assert "take_done" in events and "take_submitted" in events
    # A second run has nothing to do and says so.
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "3 takes already done" in capsys.readouterr().out


def test_invalid_manifest_exits_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, "  - id: s01\n    prompt: x\n    duration: 99\n")
    assert cli.main(["run", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "duration" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_key_for_a_real_gateway_is_a_usage_error_naming_the_variable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_API_KEY", raising=False)
    manifest = write_manifest(tmp_path, THREE)
    code = cli.main(["run", str(manifest), "--base-url", "https://gateway.example"])
    assert code == 2
    assert "SHOTRUN_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_only_restricts_the_run_by_id_or_tag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), "--only", "act2", *FAST_FLAGS]) == 0
    assert (tmp_path / "out" / "s02" / "take-1.mp4").is_file()
    assert not (tmp_path / "out" / "s01").exists()
    assert cli.main(["run", str(manifest), "--only", "s01", *FAST_FLAGS]) == 0
    assert (tmp_path / "out" / "s01" / "take-2.mp4").is_file()
    capsys.readouterr()
    assert cli.main(["run", str(manifest), "--only", "nope"]) == 2
    assert "--only nope" in capsys.readouterr().err


def test_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), "--json", *FAST_FLAGS]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["done"] == 3 and summary["all_done"] is True
    assert summary["failed"] == [] and summary["credits"]["run"] > 0


def test_changed_prompt_renders_again_and_keeps_the_old_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    old = (tmp_path / "out" / "s02" / "take-1.mp4").read_bytes()
    write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand"))
    capsys.readouterr()
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "s02/take-1" in out and "prompt changed" in out
    assert "s01/take-1" not in out.split("done:")[0]  # unchanged shots are not re-rendered
    history = list((tmp_path / "out" / "s02" / "history").rglob("take-1.mp4"))
    assert len(history) == 1 and history[0].read_bytes() == old
    decodes(tmp_path / "out" / "s02" / "take-1.mp4")


def test_budget_stop_exits_1_and_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE, api="  concurrency: 1\n")
    assert cli.main(["run", str(manifest), "--max-credits", "30", *FAST_FLAGS]) == 1
    out = capsys.readouterr().out
    assert "budget reached" in out and "done: 1/3" in out and "not submitted: 2" in out


async def test_refused_key_stops_the_run_with_a_clear_message_and_no_leak(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-key-for-the-run-987654"
    monkeypatch.setenv("SHOTRUN_API_KEY", wrong)
    manifest = write_manifest(tmp_path, THREE)
    async with run_emulator(fast_emulator()) as emulator:
        code = await main_in_thread(["run", str(manifest), "--base-url", emulator.base_url,
                                     *FAST_FLAGS])
        assert emulator.stats()["accepted_tasks"] == 0
    assert code == 1
    captured = capsys.readouterr()
    assert "refused the API key" in captured.out
    shotrun_dir = tmp_path / "out" / ".shotrun"
    for text in (captured.out, captured.err, (shotrun_dir / "run.log").read_text()):
        assert wrong not in text
    for path in shotrun_dir.iterdir():
        assert wrong.encode() not in path.read_bytes()


def quota_proxy(upstream: str, allowed: int) -> web.Application:
    """A gateway in front of the emulator that answers 402 after ``allowed`` creations."""
    created = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal created
        if request.method == "POST" and request.path == "/v1/videos/generations":
            if created >= allowed:
                return web.json_response(
                    {"error": {"code": "insufficient_quota", "type": "insufficient_quota_error",
                               "message": "Your credit balance is too low."}}, status=402)
            created += 1
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "range")}
        async with ClientSession() as session, session.request(
                request.method, upstream + request.path_qs, data=body,
                headers=headers) as resp:
            payload = await resp.read()
            text = payload.decode("utf-8", "replace") if "json" in resp.content_type else None
            if text is not None:
                text = text.replace(upstream, str(request.url.origin()))
                return web.Response(status=resp.status, text=text,
                                    content_type=resp.content_type)
            return web.Response(status=resp.status, body=payload,
                                content_type=resp.content_type,
                                headers={k: v for k, v in resp.headers.items()
                                         if k.lower() in ("content-range",)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def test_402_stops_submitting_but_collects_what_is_in_flight(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    shots = "".join(f"  - id: s{n}\n    prompt: \"shot {n}\"\n" for n in range(5))
    manifest = write_manifest(tmp_path, shots, api="  concurrency: 2\n")
    async with run_emulator(fast_emulator()) as emulator:
        proxy = TestServer(quota_proxy(emulator.base_url, allowed=2), host="127.0.0.1")
        await proxy.start_server()
        try:
            code = await main_in_thread(["run", str(manifest), "--base-url",
                                         str(proxy.make_url("")).rstrip("/"), *FAST_FLAGS])
        finally:
            await proxy.close()
        accepted = emulator.stats()["accepted_tasks"]
    out = capsys.readouterr().out
    assert code == 1
    assert accepted == 2
    assert "out of credits" in out and "done: 2/5" in out


async def test_resume_after_sigkill_at_random_points_loses_nothing_and_pays_once(
        tmp_path: Path) -> None:
    count = 16
    shots = "".join(f"  - id: s{n:02}\n    prompt: \"kill test shot {n}\"\n"
                    for n in range(count))
    manifest = write_manifest(tmp_path, shots, api="  concurrency: 4\n")
    store_path = tmp_path / "out" / ".shotrun" / "state.sqlite"
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    rng = random.Random(int(os.environ.get("SHOTRUN_TEST_SEED", "4")))
    kills = 0
    async with run_emulator(fast_emulator(processing_time=0.3)) as emulator:
        args = [sys.executable, "-m", "runner", "run", str(manifest), "--base-url",
                emulator.base_url, *FAST_FLAGS]

        def milestone() -> Callable[[], bool]:
            stats = emulator.stats()
            done = sum(1 for _, status in store_rows(store_path) if status == "done")
            kind = rng.choice(["create", "create", "download", "done", "poll"])
            if kind == "create":
                target = stats["creation_requests"] + rng.randint(1, 2)
                return lambda: emulator.stats()["creation_requests"] >= target
            if kind == "download":
                target = stats["downloads"] + 1
                return lambda: emulator.stats()["downloads"] >= target
            if kind == "poll":
                target = stats["polls"] + rng.randint(1, 6)
                return lambda: emulator.stats()["polls"] >= target
            return lambda: sum(1 for _, s in store_rows(store_path) if s == "done") > done

        for _ in range(10):
            proc = await asyncio.create_subprocess_exec(
                *args, env=env, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            reached = await wait_for(milestone(), proc)
            if reached:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await proc.wait()
            if not reached:
                break
        # Takes whose creation was cut twice are held (never resubmitted blindly in a loop);
        # --retry-failed is the user's explicit "resubmit them".
        final = await asyncio.create_subprocess_exec(
            *args, "--json", "--retry-failed", env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        stdout, _ = await final.communicate()
        stats = emulator.stats()
    assert final.returncode == 0, stdout.decode()
    with sqlite3.connect(store_path) as conn:
        rows = dict(conn.execute("SELECT key, status FROM takes").fetchall())
        ambiguous = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'ambiguous'").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        hashes = dict(conn.execute("SELECT key, sha256 FROM takes").fetchall())
    assert set(rows.values()) == {"done"} and len(rows) == count
    assert stats["accepted_tasks"] - count <= ambiguous
    assert stats["duplicate_payloads"] <= ambiguous
    import hashlib
    for key, sha in hashes.items():
        video = tmp_path / "out" / f"{key}.mp4"
        assert hashlib.sha256(video.read_bytes()).hexdigest() == sha
        decodes(video)
    assert not list((tmp_path / "out").rglob("*.part"))
    assert kills >= 6


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
async def test_first_ctrl_c_stops_gracefully_with_exit_130_and_the_next_run_collects(
        tmp_path: Path, signum: signal.Signals) -> None:
    shots = "".join(f"  - id: s{n}\n    prompt: \"sigint shot {n}\"\n" for n in range(6))
    manifest = write_manifest(tmp_path, shots, api="  concurrency: 2\n")
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    async with run_emulator(fast_emulator(processing_time=0.6)) as emulator:
        args = [sys.executable, "-m", "runner", "run", str(manifest), "--base-url",
                emulator.base_url, *FAST_FLAGS]
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert await wait_for(lambda: emulator.stats()["accepted_tasks"] >= 2, proc)
        proc.send_signal(signum)
        out, err = await proc.communicate()
        assert proc.returncode == 130, err
        assert b"keep rendering at the gateway" in err
        assert b"still at the gateway: 2" in out
        created = emulator.stats()["accepted_tasks"]
        again = await asyncio.create_subprocess_exec(*args, env=env,
                                                     stdout=asyncio.subprocess.PIPE)
        out, _ = await again.communicate()
        assert again.returncode == 0, out
        assert emulator.stats()["accepted_tasks"] == created + 4  # the 2 were collected


async def test_a_second_ctrl_c_quits_at_once_and_leaves_a_sound_store(tmp_path: Path) -> None:
    shots = "".join(f"  - id: s{n}\n    prompt: \"twice {n}\"\n" for n in range(6))
    manifest = write_manifest(tmp_path, shots, api="  concurrency: 3\n")
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    store_path = tmp_path / "out" / ".shotrun" / "state.sqlite"
    async with run_emulator(fast_emulator(processing_time=0.6)) as emulator:
        args = [sys.executable, "-m", "runner", "run", str(manifest), "--base-url",
                emulator.base_url, *FAST_FLAGS]
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert await wait_for(lambda: emulator.stats()["creation_requests"] >= 1, proc)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        _, err = await proc.communicate()
        assert proc.returncode == 130, err
        with sqlite3.connect(store_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        again = await asyncio.create_subprocess_exec(*args, "--retry-failed", env=env,
                                                     stdout=asyncio.subprocess.PIPE)
        out, _ = await again.communicate()
        stats = emulator.stats()
    assert again.returncode == 0, out
    with sqlite3.connect(store_path) as conn:
        ambiguous = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'ambiguous'").fetchone()[0]
    assert stats["accepted_tasks"] <= 6 + ambiguous


def test_bad_emulator_settings_are_a_usage_error_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(tmp_path, THREE)
    path.write_text(path.read_text().replace("render: cached", "render: cached, jitter: 7"))
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "jitter" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_long_plan_is_shown_as_counts_per_reason(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from runner.cli.summary import print_plan

    plans = ([SimpleNamespace(key=f"s{n}/take-1", action="submit", reason="new")
              for n in range(50)]
             + [SimpleNamespace(key="x/take-1", action="poll", reason="in flight")]
             + [SimpleNamespace(key=f"d{n}/take-1", action="skip", reason="done")
                for n in range(3)])
    print_plan(plans, stream_err=False)
    out = capsys.readouterr().out
    assert "submit   (new): 50 takes" in out
    assert "poll     (in flight): 1 take" in out
    assert "3 takes already done" in out
    assert "s7/take-1" not in out


@pytest.mark.parametrize("flags", [
    pytest.param(["--retries", "-1"], id="negative-retries"),
    pytest.param(["--concurrency", "0"], id="zero-concurrency"),
    pytest.param(["--poll-min", "5", "--poll-max", "1"], id="poll-bounds"),
    pytest.param(["--ambiguous", "maybe"], id="ambiguous-choice"),
    pytest.param(["--base-url", "ftp://gateway.example"], id="base-url-scheme"),
])
def test_bad_flags_exit_2_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          flags: list[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *flags]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_failed_takes_exit_1_with_their_reasons(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    manifest.write_text(manifest.read_text().replace(
        "render: cached", "render: cached, failure_rate: 1.0, "
        "failure_codes: [content_policy_violation]"))
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 1
    out = capsys.readouterr().out
    assert "done: 0/3" in out and "failed: 3" in out
    assert "content_policy_violation: " in out
    assert "s01/take-1, s01/take-2, s02/take-1" in out
    # Permanent failures are not retried by the next run unless asked.
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 1
    out = capsys.readouterr().out
    assert "failed   (failed before)" in out and "--retry-failed" in out


async def test_ctrl_c_with_the_built_in_emulator_does_not_promise_its_tasks_keep_rendering(
        tmp_path: Path) -> None:
    # The in-process emulator ends with the run: "tasks keep rendering at the gateway"
    # would be false there, and the next run (a new emulator) submits them again.
    shots = "".join(f"  - id: s{n}\n    prompt: \"built-in sigint {n}\"\n" for n in range(4))
    manifest = write_manifest(
        tmp_path, shots, api="  concurrency: 2\n  emulator: {queue_time: 0, "
                             "processing_time: 60, render: cached}\n")
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace(
        "  emulator: {queue_time: 0.01, processing_time: 0.03, render: cached}\n", "", 1),
        encoding="utf-8")
    store_path = tmp_path / "out" / ".shotrun" / "state.sqlite"
    env = {**os.environ, "SHOTRUN_API_KEY": KEY}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner", "run", str(manifest), *FAST_FLAGS, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    submitted = lambda: store_path.exists() and sum(  # noqa: E731
        1 for _, status in store_rows(store_path) if status == "submitted") >= 2
    assert await wait_for(submitted, proc)
    proc.send_signal(signal.SIGINT)
    out, err = await proc.communicate()
    assert proc.returncode == 130, err
    assert b"the built-in emulator stops with this run" in err
    assert b"keep rendering" not in err
    assert b"left at the built-in emulator: " in out and b"still at the gateway" not in out
    sent = sorted(key for key, status in store_rows(store_path) if status == "submitted")
    # The next run's emulator does not know those tasks: they are sent again, and the summary
    # names them (on a real gateway the lost task may have been billed too).
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        "processing_time: 60", "processing_time: 0.02"), encoding="utf-8")
    again = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner", "run", str(manifest), "--json", *FAST_FLAGS, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await again.communicate()
    assert again.returncode == 0, err
    summary = json.loads(out)
    assert summary["all_done"] and summary["resubmitted_unknown"] == sent  # manifest order
    text = format_summary(RunSummary(
        total=4, done=4, skipped=0, failed=(), ambiguous=0, held=(), not_started=(),
        in_flight=(), credits_run=0.0, credits_total=0.0, max_credits=None, wall_time=1.0,
        resubmitted_unknown=tuple(summary["resubmitted_unknown"])))
    assert (f"submitted again, the gateway no longer knew their task: {len(sent)} takes "
            "(the lost task may have been billed too)") in text
    assert ", ".join(summary["resubmitted_unknown"]) in text
