"""A team's runner killed while its creation is on the wire (issue 24's review).

The provider made the task; its answer never reached the runner, which is killed (SIGKILL)
before it arrives. Another runner takes the take over once the lease runs out: on Kling it
finds the task by its ``external_task_id`` and collects it; on the gateway and fal.ai the
creation is ambiguous: counted, and held with ``--ambiguous hold`` (never sent again).
(With ``--ambiguous hold`` Kling holds it too, alone as in a team: the look-up is made on
the way to a resubmission.)

The takeover used to keep the dead runner's seat taken by a take no longer in flight: with
one seat, the second runner waited for ever.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import psycopg
import pytest
from aiohttp import web

from runner.emulator import run_emulator
from tests.helpers.team import ended, spawn, team_args, until
from tests.helpers.torture import PROVIDERS, emulator, manifest, relay, serve, url_of

TAKES = 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_runner_killed_with_its_creation_on_the_wire_is_never_paid_twice(
    tmp_path: Path, pg_url: str, provider: str,
) -> None:
    path = manifest(tmp_path, TAKES)
    answered = asyncio.Event()  # never set: the first creation's answer is held for good
    held: list[str] = []

    async def hold_first_answer(request: web.Request, body: bytes) -> bytes:
        if request.method == "POST" and not held:
            held.append(request.path)
            await answered.wait()
        return body

    async with run_emulator(emulator(processing_time=0.05, seed=51),
                            provider=provider) as emu:
        server = await serve(relay(emu.base_url, body_hook=hold_first_answer))
        try:
            # Kling looks a lost creation up when it would resubmit it (the default policy);
            # elsewhere "hold" keeps the ambiguous one from being paid twice.
            policy = [] if provider == "kling" else ["--ambiguous", "hold"]
            args = team_args(path, url_of(server), pg_url, "--provider", provider,
                             "--concurrency", "1", "--lease", "1", *policy)
            first = await spawn(args)
            await until(lambda: emu.stats()["accepted_tasks"] == 1 and bool(held), [first])
            first.send_signal(signal.SIGKILL)
            await first.wait()
            code, out, err = await ended(await spawn(args), timeout=120)
            stats = emu.stats()
        finally:
            await server.close()
    with psycopg.connect(pg_url) as conn:
        statuses = dict(conn.execute("SELECT key, status FROM takes").fetchall())
    if provider == "kling":  # found by its external_task_id: collected, nothing held
        assert code == 0, out + err
        assert set(statuses.values()) == {"done"}, statuses
        assert stats["accepted_tasks"] == TAKES, stats
        assert "ambiguous" not in out, out
    else:
        assert code == 1, out + err
        assert sorted(statuses.values()) == ["done", "done", "held"], statuses
        assert stats["accepted_tasks"] == TAKES, stats  # the lost one never created again
        assert "ambiguous submissions: 1" in out, out


@pytest.mark.parametrize("provider", ["gateway", "kling"])
async def test_ctrl_c_twice_with_a_creation_on_the_wire_says_the_next_run_may_spend(
    tmp_path: Path, pg_url: str, provider: str,
) -> None:
    """The summary said "still at the gateway: 1; run again to collect them (spends
    nothing)" of a creation whose answer never came: the next run creates it again."""
    path = manifest(tmp_path, TAKES)
    answered = asyncio.Event()
    held: list[str] = []

    async def hold_first_answer(request: web.Request, body: bytes) -> bytes:
        if request.method == "POST" and not held:
            held.append(request.path)
            await answered.wait()
        return body

    async with run_emulator(emulator(processing_time=0.05, seed=52),
                            provider=provider) as emu:
        server = await serve(relay(emu.base_url, body_hook=hold_first_answer))
        try:
            args = team_args(path, url_of(server), pg_url, "--provider", provider,
                             "--concurrency", "1")
            runner = await spawn(args)
            await until(lambda: emu.stats()["accepted_tasks"] == 1 and bool(held), [runner])
            runner.send_signal(signal.SIGINT)
            assert runner.stderr is not None
            seen = b""
            while b"stopping:" not in seen:  # the first Ctrl-C was handled: now the second
                line = await asyncio.wait_for(runner.stderr.readline(), 60)
                assert line, seen
                seen += line
            runner.send_signal(signal.SIGINT)
            code, out, err = await ended(runner, timeout=60)
        finally:
            await server.close()
    assert code == 130, out + err
    assert "s000/take-1: its creation was sent but its answer never came" in out, out
    if provider == "kling":
        assert "looks it up by its id" in out, out
    else:
        assert "creates it again (spends" in out, out
