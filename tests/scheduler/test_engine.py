"""The engine against the real emulator over loopback: the behaviours issue 4 asks for."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from runner.cli.summary import format_summary
from runner.emulator import run_emulator
from runner.scheduler.backoff import BackoffPolicy
from runner.scheduler.engine import Engine
from runner.scheduler.polling import PollPolicy
from runner.scheduler.snapshot import RunProgress
from runner.state import StateStore, TakeStatus, store_path_for
from tests.helpers.engine import (
    FAST,
    Shot,
    decode,
    fast_emulator,
    local_png,
    make_manifest,
    run_engine,
    store_totals,
)


async def test_takes_render_end_to_end_into_verified_videos(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "a cat on a wall", takes=2),
                                        Shot("s02", "a dog on a beach"),
                                        Shot("s03", "rain over a city", duration=4)])
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url)
        stats = emulator.stats()
    summary = out.summary
    assert summary.all_done and summary.done == 4 and not summary.failed
    assert stats["accepted_tasks"] == 4 and stats["creation_requests"] == 4
    for take in manifest.takes:
        record = out.store_records[take.key]
        assert record.status is TakeStatus.DONE
        path = tmp_path / "out" / take.shot_id / f"take-{take.take}.mp4"
        assert Path(record.output_path) == path
        duration, width, height = decode(path)
        assert (width, height) == (1280, 720)
        assert abs(duration - take.request.duration) < 0.2
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert record.task_id in json.dumps(sidecar)
    assert not list((tmp_path / "out").rglob("*.part"))
    assert out.progress[-1].done == 4
    assert summary.credits_run > 0
    # The observer saw the run move: takes at the gateway with their progress, credits.
    assert any(p.in_flight and p.takes for p in out.progress)
    assert any(t.task_id for p in out.progress for t in p.takes)
    assert out.progress[-1].credits_reserved == summary.credits_total
    assert out.progress[-1].durations and out.progress[0].total == 4


async def test_rerun_skips_done_takes_without_asking_the_gateway(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "a cat", takes=2)])
    async with run_emulator(fast_emulator()) as emulator:
        await run_engine(manifest, emulator.base_url)
        before = emulator.stats()
        again = await run_engine(manifest, emulator.base_url)
        after = emulator.stats()
    assert again.summary.skipped == 2 and again.summary.all_done
    assert after["creation_requests"] == before["creation_requests"]
    assert after["polls"] == before["polls"]


async def test_injected_429_5xx_resets_truncation_and_task_failures_are_survived(
        tmp_path: Path) -> None:
    shots = [Shot(f"s{n:02}", f"shot number {n}") for n in range(14)]
    manifest = make_manifest(tmp_path, shots)
    chaos = fast_emulator(error_rates={"429": 0.15, "500": 0.1, "502": 0.05, "503": 0.05},
                          reset_rate=0.05, truncate_rate=0.35, failure_rate=0.3,
                          failure_codes=("service_error", "generation_timeout"),
                          concurrency_cap=3)
    settings = replace(FAST, **{"retries": 8, "concurrency": 6,
                                 "download_attempts": 20,
                                 "backoff": BackoffPolicy(base=0.01, cap=0.05,
                                                          retry_after_cap=0.05,
                                                          max_attempts=30)})
    async with run_emulator(chaos) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        for _ in range(3):
            if out.summary.all_done:
                break
            # Only takes whose creation was lost twice may be left (held, not resubmitted
            # blindly); --retry-failed is the user's "resubmit them" (once per run).
            assert out.summary.held and not out.summary.failed, out.summary
            out = await run_engine(manifest, emulator.base_url, settings=settings,
                                   retry_failed=True)
        stats = emulator.stats()
    ambiguous = store_totals(manifest)["ambiguous_submissions"]
    assert out.summary.all_done, out.summary
    assert stats["accepted_tasks"] <= len(manifest.takes) + stats["failed_tasks"] + ambiguous
    assert stats["rate_limited"] + stats["injected_errors"] > 0
    assert stats["truncated"] > 0 and stats["failed_tasks"] > 0, stats
    for take in manifest.takes:
        decode(Path(out.store_records[take.key].output_path))


async def test_a_refused_key_stops_the_run_at_once_without_leaking_it(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"p{n}") for n in range(6)])
    wrong = "sk-wrong-key-abcdef0123"
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url, key=wrong)
        stats = emulator.stats()
    summary = out.summary
    assert summary.stopped_reason == "auth"
    assert "401" in (summary.stopped_message or "")
    assert stats["accepted_tasks"] == 0
    assert summary.done == 0 and not summary.all_done
    assert wrong not in json.dumps(summary.to_json())
    store_text = (tmp_path / "out" / ".shotrun" / "state.sqlite").read_bytes()
    assert wrong.encode() not in store_text


async def test_task_level_quota_exhaustion_stops_submitting(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"p{n}") for n in range(8)])
    settings = replace(FAST, **{"concurrency": 1})
    async with run_emulator(fast_emulator(failure_rate=1.0,
                                          failure_codes=("quota_exceeded",))) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert out.summary.stopped_reason == "quota"
    assert stats["accepted_tasks"] < 8
    assert out.summary.not_started
    assert "out of credits" in (out.summary.stopped_message or "")


async def test_permanent_task_failures_fail_the_take_with_the_gateway_message(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "p1"), Shot("s02", "p2")])
    async with run_emulator(fast_emulator(failure_rate=1.0,
                                          failure_codes=("content_policy_violation",))) as emu:
        out = await run_engine(manifest, emu.base_url)
        stats = emu.stats()
    assert len(out.summary.failed) == 2
    assert {f.code for f in out.summary.failed} == {"content_policy_violation"}
    assert stats["accepted_tasks"] == 2  # never retried as is
    for record in out.store_records.values():
        assert record.status is TakeStatus.FAILED and record.failure_kind == "permanent"


async def test_transient_task_failures_are_retried_up_to_the_limit(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "p1")])
    settings = replace(FAST, **{"retries": 2})
    async with run_emulator(fast_emulator(failure_rate=1.0,
                                          failure_codes=("service_error",))) as emu:
        out = await run_engine(manifest, emu.base_url, settings=settings)
        stats = emu.stats()
    assert stats["accepted_tasks"] == 3  # the first try and two retries
    [failure] = out.summary.failed
    assert failure.kind == "transient" and failure.code == "service_error"


async def test_a_request_side_error_fails_the_take_and_its_dependents_only(
        tmp_path: Path) -> None:
    # @Image2 with no images: the gateway answers 400 invalid_request_error.
    manifest = make_manifest(tmp_path, [Shot("bad", "look at @Image2"),
                                        Shot("next", "after the bad one", after=("bad",)),
                                        Shot("free", "independent")])
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url)
    failed = {f.key: f for f in out.summary.failed}
    assert set(failed) == {"bad/take-1", "next/take-1"}
    assert failed["bad/take-1"].kind == "permanent"
    assert failed["next/take-1"].kind == "dependency"
    assert "bad" in failed["next/take-1"].message
    assert out.store_records["free/take-1"].status is TakeStatus.DONE


async def test_dependent_takes_wait_for_their_source(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s02", "second", after=("s01",)),
                                        Shot("s01", "first", takes=2)])
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url)
    records = out.store_records
    assert out.summary.all_done
    assert records["s02/take-1"].submitting_at >= max(
        records["s01/take-1"].downloaded_at, records["s01/take-2"].downloaded_at)


async def test_expired_links_are_refreshed_by_asking_the_task_again(tmp_path: Path) -> None:
    # One download at a time, each ~0.3 s, links living 0.1 s: the takes waiting for the
    # download slot find their links dead and must ask the task for fresh ones.
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"p{n}") for n in range(3)])
    slow = fast_emulator(link_ttl=0.1, download_rate=110_000)
    settings = replace(FAST, **{"link_refreshes": 50, "downloads": 1})
    async with run_emulator(slow) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert out.summary.all_done, out.summary
    assert stats["expired_link_hits"] > 0
    for record in out.store_records.values():
        decode(Path(record.output_path))


async def test_the_budget_stops_submissions_and_says_so(tmp_path: Path) -> None:
    # 3 s at 720p is estimated at 24.3 credits: two takes fit in 50, the third does not.
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"p{n}") for n in range(4)],
                             max_credits=50)
    settings = replace(FAST, **{"max_credits": 50, "concurrency": 1})
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    summary = out.summary
    assert summary.stopped_reason == "budget"
    assert summary.done == 2 and len(summary.not_started) == 2
    assert stats["accepted_tasks"] == 2
    assert summary.credits_total <= 50
    assert "budget" in (summary.stopped_message or "")
    # The cap is for the manifest's life: a later run counts what earlier ones reserved.
    more = replace(settings, max_credits=100)
    async with run_emulator(fast_emulator()) as emulator:
        again = await run_engine(manifest, emulator.base_url, settings=more)
    assert again.summary.all_done and again.summary.done == 2
    assert 90 < again.summary.credits_total <= 100


async def test_the_same_local_image_is_uploaded_once_for_many_takes(tmp_path: Path) -> None:
    image = local_png(tmp_path / "assets" / "hero.png")
    shots = [Shot(f"s{n}", f"@Image1 number {n}", images=(image,), takes=2) for n in range(4)]
    manifest = make_manifest(tmp_path, shots)
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url)
        assert emulator.stats()["uploads"] == 1
        changed = make_manifest(tmp_path, [Shot("s9", "@Image1 again", images=(image,))])
        await run_engine(changed, emulator.base_url)
        assert emulator.stats()["uploads"] == 1  # the store remembered the URL
    assert out.summary.all_done


async def test_interrupting_leaves_in_flight_tasks_for_the_next_run(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"p{n}") for n in range(6)])
    stopped: list[int] = []

    def stop_when_in_flight(engine: Engine, progress: RunProgress) -> None:
        if progress.in_flight >= 2 and not stopped:
            stopped.append(engine.request_stop())

    slow = fast_emulator(processing_time=0.5)
    settings = replace(FAST, **{"concurrency": 2})
    async with run_emulator(slow) as emulator:
        first = await run_engine(manifest, emulator.base_url, settings=settings,
                                 on_progress=stop_when_in_flight)
        created = emulator.stats()["accepted_tasks"]
        second = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert first.summary.stopped_reason == "interrupted"
    assert len(first.summary.in_flight) >= 2 and first.summary.not_started
    assert second.summary.all_done
    ambiguous = second.summary.ambiguous + first.summary.ambiguous
    assert stats["accepted_tasks"] <= 6 + ambiguous
    assert stats["accepted_tasks"] - created == 6 - len(first.summary.in_flight) - \
        first.summary.done


async def test_ambiguous_takes_found_on_resume_are_held_or_resubmitted_once(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "lost answer"), Shot("s02", "fine")])
    key = "s01/take-1"
    store = StateStore.open(store_path_for(manifest))
    store.sync(manifest.takes)
    store.mark_submitting(key, {"prompt": "lost answer"}, 24.3)  # then the process "died"
    store.close()
    async with run_emulator(fast_emulator()) as emulator:
        held = await run_engine(manifest, emulator.base_url, ambiguous="hold")
        assert held.summary.held == (key,) and held.summary.ambiguous == 1
        assert emulator.stats()["accepted_tasks"] == 1  # only s02
        assert held.store_records[key].status is TakeStatus.HELD
        again = await run_engine(manifest, emulator.base_url, ambiguous="hold")
        assert again.summary.held == (key,)
        resubmitted = await run_engine(manifest, emulator.base_url, retry_failed=True)
        stats = emulator.stats()
    assert resubmitted.summary.all_done
    assert stats["accepted_tasks"] == 2


async def test_the_in_flight_limit_backs_off_on_429_and_respects_the_account_cap(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n:02}", f"cap {n}") for n in range(12)])
    settings = replace(FAST, concurrency=8)
    async with run_emulator(fast_emulator(concurrency_cap=2, processing_time=0.1)) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert out.summary.all_done
    assert stats["max_in_flight"] <= 2
    assert stats["rate_limited"] > 0
    assert min(p.concurrency_limit for p in out.progress) < 8
    # AIMD: far fewer 429s than a client retrying blindly at 8 in flight would meet.
    assert stats["rate_limited"] < 3 * len(manifest.takes)


async def test_polling_is_sparse_and_guided_by_the_estimate(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"poll {n}") for n in range(6)])
    settings = replace(FAST, polling=PollPolicy(min_interval=0.1, max_interval=1.0,
                                                default_estimate=1.0))
    async with run_emulator(fast_emulator(queue_time=0.1, processing_time=0.5)) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert out.summary.all_done
    per_task = stats["polls_per_task"].values()
    # A first check near the estimate, a few more while rendering (the emulator may run late
    # on a loaded machine: lateness makes the intervals grow, not the polls pile up).
    assert max(per_task) <= 12, stats["polls_per_task"]


async def test_an_unwritable_output_fails_the_take_clearly_and_the_next_run_finishes(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "blocked"), Shot("s02", "free")])
    blocker = tmp_path / "out" / "s01"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    async with run_emulator(fast_emulator()) as emulator:
        first = await run_engine(manifest, emulator.base_url)
        [failure] = first.summary.failed
        assert failure.key == "s01/take-1" and "s01" in failure.message
        assert first.store_records["s02/take-1"].status is TakeStatus.DONE
        blocker.unlink()
        second = await run_engine(manifest, emulator.base_url)
        stats = emulator.stats()
    assert second.summary.all_done
    assert stats["accepted_tasks"] == 2  # the paid task was downloaded, not created again


async def test_a_stuck_task_is_left_for_the_next_run_after_the_task_timeout(
        tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path, [Shot("s01", "stuck")])
    settings = replace(FAST, task_timeout=0.2)
    async with run_emulator(fast_emulator(processing_time=1.0)) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        assert out.summary.in_flight == ("s01/take-1",) and not out.summary.failed
        assert out.store_records["s01/take-1"].status is TakeStatus.SUBMITTED
        again = await run_engine(manifest, emulator.base_url)  # patient this time
        stats = emulator.stats()
    assert again.summary.all_done
    assert stats["accepted_tasks"] == 1  # polled again, never resubmitted


async def test_an_upload_close_to_expiry_is_uploaded_again(tmp_path: Path) -> None:
    image = local_png(tmp_path / "assets" / "hero.png")
    first = make_manifest(tmp_path, [Shot("s1", "@Image1 one", images=(image,))])
    second = make_manifest(tmp_path, [Shot("s2", "@Image1 two", images=(image,))])
    async with run_emulator(fast_emulator()) as emulator:
        await run_engine(first, emulator.base_url)
        store = StateStore.open(store_path_for(first))
        key = f"{image.sha256}@{emulator.base_url}"  # per content and file service
        cached = store.get_upload(key)
        assert cached is not None
        store.put_upload(key, cached.url, time.time() + 600)  # 10 min left
        store.close()
        out = await run_engine(second, emulator.base_url)
        assert emulator.stats()["uploads"] == 2
    assert out.summary.all_done


async def test_unreadable_status_answers_leave_the_paid_task_with_a_reason(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """A gateway whose task answers are garbage: the take is left (never resubmitted)."""
    created: list[int] = []

    async def create(request: web.Request) -> web.Response:
        created.append(1)
        return web.json_response({"id": "task-1", "status": "pending", "progress": 0,
                                  "task_info": {"estimated_time": 0.01},
                                  "usage": {"credits_reserved": 24.3}})

    async def query(request: web.Request) -> web.Response:
        return web.Response(text="{not json", content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/videos/generations", create)
    app.router.add_get("/v1/tasks/{task_id}", query)
    server = await aiohttp_server(app, host="127.0.0.1")
    manifest = make_manifest(tmp_path, [Shot("s01", "garbage answers")])
    out = await run_engine(manifest, str(server.make_url("")).rstrip("/"))
    summary = out.summary
    assert summary.in_flight == ("s01/take-1",) and not summary.failed
    assert "cannot be read" in summary.left_reasons["s01/take-1"]
    assert out.store_records["s01/take-1"].status is TakeStatus.SUBMITTED
    assert created == [1]
    assert "cannot be read" in format_summary(summary)


async def test_an_asset_edited_or_removed_after_loading_fails_its_takes_clearly(
        tmp_path: Path) -> None:
    edited = local_png(tmp_path / "assets" / "edited.png")
    removed = local_png(tmp_path / "assets" / "removed.png", (10, 200, 90))
    manifest = make_manifest(tmp_path, [Shot("a", "@Image1 edited", images=(edited,)),
                                        Shot("b", "@Image1 removed", images=(removed,)),
                                        Shot("c", "no image")])
    edited.path.write_bytes(edited.path.read_bytes() + b"\0")
    removed.path.unlink()
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url)
        stats = emulator.stats()
    failed = {f.key: f.message for f in out.summary.failed}
    assert "changed since the manifest was read" in failed["a/take-1"]
    assert "gone" in failed["b/take-1"]
    assert out.store_records["c/take-1"].status is TakeStatus.DONE
    assert stats["accepted_tasks"] == 1 and stats["uploads"] == 0


async def test_uploads_are_remembered_per_file_service(tmp_path: Path) -> None:
    image = local_png(tmp_path / "assets" / "hero.png")
    first = make_manifest(tmp_path, [Shot("s1", "@Image1 one", images=(image,))])
    second = make_manifest(tmp_path, [Shot("s2", "@Image1 two", images=(image,))])
    async with run_emulator(fast_emulator()) as emulator:
        await run_engine(first, emulator.base_url)
    async with run_emulator(fast_emulator()) as other:  # another service: old URLs are void
        out = await run_engine(second, other.base_url)
        assert other.stats()["uploads"] == 1
    assert out.summary.all_done


async def test_tasks_unknown_to_the_gateway_are_submitted_again(tmp_path: Path) -> None:
    """A crash under the built-in emulator: the next run's gateway never heard of the tasks."""
    manifest = make_manifest(tmp_path, [Shot("polled", "p1"), Shot("fetched", "p2")])
    store = StateStore.open(store_path_for(manifest))
    store.sync(manifest.takes)
    for key in ("polled/take-1", "fetched/take-1"):
        store.mark_submitting(key, {"prompt": key}, 24.3)
        store.mark_submitted(key, f"task-unified-1700000000-{key[:6]:0<8}", 24.3, 0.01)
    store.mark_completed("fetched/take-1", "http://127.0.0.1:1/results/gone.mp4",
                         time.time() + 3600)
    store.close()
    stale = tmp_path / "out" / "fetched" / "take-1.mp4.part"  # half of the old task's video
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\0" * 5000)
    settings = replace(FAST, download_attempts=4)
    async with run_emulator(fast_emulator()) as emulator:
        out = await run_engine(manifest, emulator.base_url, settings=settings)
        stats = emulator.stats()
    assert out.summary.all_done, out.summary
    assert stats["accepted_tasks"] == 2
    assert stats["downloads"] == 2  # the stale .part was dropped, not spliced and rejected
    for record in out.store_records.values():
        assert record.attempts == 2
        decode(Path(record.output_path))


async def test_a_stop_before_the_run_starts_touches_nothing(tmp_path: Path) -> None:
    from runner.providers.gateway.client import GatewayClient
    from tests.helpers.engine import KEY


    manifest = make_manifest(tmp_path, [Shot("a", "in flight"), Shot("b", "new")])
    store = StateStore.open(store_path_for(manifest))
    try:
        store.sync(manifest.takes)
        store.mark_submitting("a/take-1", {"prompt": "in flight"}, 24.3)
        store.mark_submitted("a/take-1", "task-unified-1700000000-aaaaaaaa", 24.3, 1.0)
        plans = store.sync(manifest.takes)
        async with run_emulator(fast_emulator()) as emulator:
            client = GatewayClient(emulator.base_url, emulator.base_url, KEY)
            engine = Engine(manifest, store, client, plans, FAST)
            engine.request_stop()  # Ctrl-C while the run was still setting up
            summary = await engine.run()
            await client.close()
            stats = emulator.stats()
    finally:
        store.close()
    assert summary.stopped_reason == "interrupted"
    assert summary.in_flight == ("a/take-1",) and summary.not_started == ("b/take-1",)
    assert stats["polls"] == 0 and stats["creation_requests"] == 0


async def test_a_store_that_stops_writing_stops_the_whole_run(tmp_path: Path) -> None:
    from runner.core.errors import StateError

    manifest = make_manifest(tmp_path, [Shot(f"s{n}", f"store {n}") for n in range(8)])
    settings = replace(FAST, concurrency=2)
    broken: list[int] = []

    def break_store(engine: Engine, progress: RunProgress) -> None:
        if progress.in_flight and not broken:
            broken.append(1)
            engine.store.close()  # from now on every write fails, like a full disk

    async with run_emulator(fast_emulator(processing_time=0.2)) as emulator:
        with pytest.raises(StateError, match="closed") as info:
            await run_engine(manifest, emulator.base_url, settings=settings,
                             on_progress=break_store)
        created = emulator.stats()["accepted_tasks"]
    assert any(frame.name == "run" and "engine" in str(frame.path)
               for frame in info.traceback)  # raised by Engine.run, not afterwards
    assert broken and created <= 2  # nothing was sent once nothing could be recorded


async def test_a_result_that_fails_its_check_twice_fails_the_take_and_is_kept_aside(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """The gateway serves the same non-video bytes twice: paid for, so kept, never 'done'."""
    created: list[int] = []
    fetched: list[int] = []
    body = b"<html>not a video</html>" * 40

    async def create(request: web.Request) -> web.Response:
        created.append(1)
        return web.json_response({"id": "task-1", "status": "pending", "progress": 0,
                                  "task_info": {"estimated_time": 0.01}})

    async def query(request: web.Request) -> web.Response:
        url = str(request.url.with_path("/files/v.mp4").with_query(None))
        return web.json_response({"id": "task-1", "status": "completed", "progress": 100,
                                  "results": [url]})

    async def result(request: web.Request) -> web.Response:
        fetched.append(1)
        return web.Response(body=body, content_type="video/mp4")

    app = web.Application()
    app.router.add_post("/v1/videos/generations", create)
    app.router.add_get("/v1/tasks/{task_id}", query)
    app.router.add_get("/files/v.mp4", result)
    server = await aiohttp_server(app, host="127.0.0.1")
    manifest = make_manifest(tmp_path, [Shot("s01", "bad bytes")])
    out = await run_engine(manifest, str(server.make_url("")).rstrip("/"))
    record = out.store_records["s01/take-1"]
    assert record.status is TakeStatus.FAILED and record.last_error_code == "verify_failed"
    assert "kept as take-1.rejected.mp4" in (record.last_error or "")
    shot = manifest.output_dir / "s01"
    assert (shot / "take-1.rejected.mp4").read_bytes() == body
    assert not (shot / "take-1.mp4").exists() and not (shot / "take-1.mp4.part").exists()
    assert created == [1] and fetched == [1, 1]
