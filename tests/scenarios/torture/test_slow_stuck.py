"""Slow and stuck: long renders, a download that stalls mid-way, a gateway that stops answering.

The run must neither hang forever nor give up too early, and every limit involved is a flag
(``--task-timeout``, ``--request-timeout``, ``--read-timeout``). A hang is caught by
:func:`tests.helpers.torture.run_cli`'s own limit, far above what the run should take.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from runner.emulator import run_emulator
from tests.helpers.torture import (
    Scale,
    audit,
    emulator,
    manifest,
    relay,
    run_args,
    run_cli,
    serve,
    url_of,
)


async def test_long_processing_is_waited_for_not_abandoned(tmp_path: Path, scale: Scale) -> None:
    path = manifest(tmp_path, scale.small)
    slow = 6.0 if scale.long else 1.5
    async with run_emulator(emulator(processing_time=slow, seed=5)) as emu:
        code, out, _ = await run_cli(run_args(path, emu.base_url, "--json",
                                              "--task-timeout", str(slow * 20)))
        stats = emu.stats()
    assert code == 0, out
    audit(tmp_path, scale.small)
    assert stats["accepted_tasks"] == scale.small  # waited, never resubmitted


async def test_a_download_that_stalls_mid_way_is_cut_by_the_read_timeout_and_resumed(
        tmp_path: Path, scale: Scale) -> None:
    stalls = 2 if scale.long else 1
    stalled: list[str] = []
    forever = asyncio.Event()

    async def stall(request: web.Request, body: bytes) -> web.StreamResponse | None:
        if not request.path.startswith("/results/") or len(stalled) >= stalls:
            return None
        stalled.append(request.path)
        response = web.StreamResponse(headers={"Content-Type": "video/mp4",
                                               "Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b"\0" * 1000)  # some bytes, then silence
        await forever.wait()
        return response

    path = manifest(tmp_path, scale.small)
    async with run_emulator(emulator(seed=6)) as emu:
        front = await serve(relay(emu.base_url, stall))
        try:
            code, out, err = await run_cli(
                run_args(path, url_of(front), "--json", "--read-timeout", "0.5"), timeout=120)
        finally:
            forever.set()
            await front.close()
    assert code == 0, (out, err)
    assert len(stalled) == stalls
    audit(tmp_path, scale.small)


async def test_a_gateway_that_stops_answering_ends_the_run_with_held_takes_not_a_hang(
        tmp_path: Path, scale: Scale) -> None:
    forever = asyncio.Event()
    seen: list[str] = []

    async def silent(request: web.Request, body: bytes) -> web.StreamResponse | None:
        seen.append(request.path)
        await forever.wait()
        return web.Response(status=500)

    app = web.Application()
    async def handler(request: web.Request) -> web.StreamResponse:
        answer = await silent(request, b"")
        assert answer is not None
        return answer

    app.router.add_route("*", "/{tail:.*}", handler)
    server = await serve(app)
    path = manifest(tmp_path, 2)
    try:
        code, out, err = await run_cli(
            run_args(path, url_of(server), "--json", "--request-timeout", "0.4",
                     "--connect-timeout", "0.4"), timeout=120)
    finally:
        forever.set()
        await server.close()
    summary = json.loads(out)
    assert code == 1 and not summary["all_done"]
    # A creation that got no answer may still have been billed: held, counted, never looped.
    assert summary["ambiguous"] >= 1 and summary["held"], summary
    assert len(seen) <= 2 * 2 + 2  # each take sent at most twice (once more when ambiguous)
    assert "Traceback" not in err


async def test_a_gateway_slower_than_usual_but_within_the_limit_is_waited_for(
        tmp_path: Path, scale: Scale) -> None:
    async def slow(request: web.Request, body: bytes) -> web.StreamResponse | None:
        await asyncio.sleep(0.3)  # the gateway's own slowness, not a wait in the test
        return None

    path = manifest(tmp_path, scale.small)
    async with run_emulator(emulator(seed=8)) as emu:
        front = await serve(relay(emu.base_url, slow))
        try:
            code, out, _ = await run_cli(
                run_args(path, url_of(front), "--json", "--request-timeout", "10"))
        finally:
            await front.close()
        stats = emu.stats()
    assert code == 0, out
    assert json.loads(out)["ambiguous"] == 0
    assert stats["accepted_tasks"] == scale.small
    audit(tmp_path, scale.small)


async def test_a_gateway_that_goes_silent_after_accepting_is_left_for_the_next_run(
        tmp_path: Path, scale: Scale) -> None:
    """Tasks accepted, then every status check hangs: the run stops waiting after the task
    timeout (a setting) instead of hanging, and the next run collects the paid tasks."""
    forever = asyncio.Event()

    async def silent_after_create(request: web.Request,
                                  body: bytes) -> web.StreamResponse | None:
        if request.method == "GET":
            await forever.wait()
        return None

    path = manifest(tmp_path, scale.small)
    async with run_emulator(emulator(seed=9)) as emu:
        front = await serve(relay(emu.base_url, silent_after_create))
        try:
            code, out, err = await run_cli(
                run_args(path, url_of(front), "--json", "--request-timeout", "0.15",
                         "--task-timeout", "2"), timeout=120)
        finally:
            forever.set()
            await front.close()
        summary = json.loads(out)
        assert code == 1 and len(summary["in_flight"]) == scale.small, summary
        assert "Traceback" not in err
        code, out, err = await run_cli(run_args(path, emu.base_url))
        stats = emu.stats()
    assert code == 0, out + err
    audit(tmp_path, scale.small)
    assert stats["accepted_tasks"] == scale.small  # collected, never paid twice


@pytest.mark.parametrize("flags", [["--read-timeout", "0"], ["--request-timeout", "-1"],
                                   ["--connect-timeout", "nan"], ["--max-result-size", "lots"]])
async def test_bad_limits_are_a_usage_error_before_anything_is_written(
        tmp_path: Path, flags: list[str]) -> None:
    path = manifest(tmp_path, 1)
    code, _, err = await run_cli(run_args(path, "emulator", *flags))
    assert code == 2 and "Traceback" not in err, err
    assert flags[0] in err or "timeout" in err, err
    assert not (tmp_path / "out").exists()
