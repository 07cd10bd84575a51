"""Exit 4 for a run the state store stopped mid-way; exit 2 for a store that cannot be opened.

Exit 2 promises "nothing was sent and nothing written", which is false once a task has been
paid for: a store that stops recording under a running run (disk full, read-only, gone) is
exit 4, with a one-line message saying what to do, and the next run continues without paying
again. A store that cannot even be opened (locked by another run, from a newer shotrun) is
still exit 2, and indeed nothing was sent.

The disk fills up at a chosen moment: when the gateway is first asked about a task (so the
creation was sent, paid and recorded), the test lowers the ``shotrun`` process's RLIMIT_FSIZE
with ``prlimit`` to below the store's size, so its next write to the store fails with EFBIG
as one fails with ENOSPC on a full disk (Python ignores SIGXFSZ).

Below the CLI: the type that carries the difference (a failed write is a
:class:`StoreWriteFailed`, a store that cannot open a plain :class:`StateError`) and the
engine, which reports whatever store failure stopped it mid-way as the former.
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import sys
from pathlib import Path

import pytest
from aiohttp import web

from runner import cli
from runner.core.errors import EXIT_STORE, EXIT_USAGE, StateError, StoreWriteFailed
from runner.emulator import run_emulator
from runner.scheduler.engine import Engine
from runner.scheduler.snapshot import RunProgress
from runner.state import StateStore
from runner.state import dbfile as state_schema
from tests.helpers import engine as engine_helpers
from tests.helpers.state import make_take, payloads
from tests.helpers.torture import (
    audit,
    emulator,
    env,
    manifest,
    relay,
    run_args,
    run_cli,
    serve,
    store_path,
    url_of,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="prlimit on another process is Linux's")

TASKS = "/v1/tasks/"


async def test_a_store_that_stops_recording_mid_run_exits_4_and_the_next_run_pays_nothing_more(
        tmp_path: Path) -> None:
    path = manifest(tmp_path, 1)
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    full: list[int] = []

    async def fill_the_disk(request: web.Request, _body: bytes) -> web.StreamResponse | None:
        if request.method == "GET" and request.path.startswith(TASKS) and not full:
            pid = await started
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, 4096))
            full.append(pid)
        return None  # the emulator answers, as ever

    async with run_emulator(emulator(seed=41)) as emu:
        front = await serve(relay(emu.base_url, fill_the_disk))
        try:
            args = run_args(path, url_of(front))
            proc = await asyncio.create_subprocess_exec(
                *args, "--json", env=env(), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            started.set_result(proc.pid)
            raw_out, raw_err = await asyncio.wait_for(proc.communicate(), 120)
            out, err = raw_out.decode(), raw_err.decode()
            paid = emu.stats()["accepted_tasks"]
            assert full, "the gateway was never asked about a task"
            assert proc.returncode == EXIT_STORE, out + err
            assert paid == 1  # it stopped after the creation was sent and paid for
            lines = [line for line in err.splitlines() if line.startswith("shotrun: error:")]
            assert len(lines) == 1, err
            line = lines[0]
            assert str(store_path(tmp_path)) in line and "is the disk full" in line, line
            assert "free some space and run again" in line and "kept" in line, line
            assert "Traceback" not in out + err, err
            assert out == ""  # --json: no half summary a script could take for the real one
            with sqlite3.connect(store_path(tmp_path)) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                status, task = conn.execute("SELECT status, task_id FROM takes").fetchone()
            conn.close()
            assert status == "submitted" and task, status  # the paid task is on record
            # The disk has room again: the same task is collected, not paid for again.
            code, out, err = await run_cli(run_args(path, url_of(front)))
            stats = emu.stats()
        finally:
            await front.close()
    assert code == 0, out + err
    audit(tmp_path, 1)
    assert stats["accepted_tasks"] == 1


async def test_a_store_locked_by_another_run_exits_2_and_sends_nothing(tmp_path: Path) -> None:
    path = manifest(tmp_path, 2)
    store = store_path(tmp_path)
    store.parent.mkdir(parents=True)
    lock = state_schema.WriterLock(store)
    lock.acquire()  # "another run": the lock is held by this process
    try:
        async with run_emulator(emulator(seed=42)) as emu:
            code, out, err = await run_cli(run_args(path, emu.base_url))
            stats = emu.stats()
    finally:
        lock.release()
    assert code == EXIT_USAGE, out + err
    assert "shotrun: error: another shotrun run is using" in err, err
    assert "Traceback" not in out + err, err
    assert stats["creation_requests"] == 0 and stats["accepted_tasks"] == 0


async def test_a_store_from_a_newer_shotrun_exits_2_and_sends_nothing(tmp_path: Path) -> None:
    path = manifest(tmp_path, 2)
    async with run_emulator(emulator(seed=43)) as emu:
        args = run_args(path, emu.base_url)
        code, out, err = await run_cli(args)
        assert code == 0, out + err
        with sqlite3.connect(store_path(tmp_path)) as conn:
            conn.execute("UPDATE schema_version SET version = 99")
        conn.close()
        before = emu.stats()["creation_requests"]
        code, out, err = await run_cli([*args, "--retry-failed"])
        after = emu.stats()["creation_requests"]
    assert code == EXIT_USAGE, out + err
    assert "upgrade shotrun" in err and "Traceback" not in out + err, err
    assert after == before


def test_the_cli_maps_a_failed_store_write_to_4_and_other_store_errors_to_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    for error, expected in ((StoreWriteFailed("state store /x: disk I/O error"), EXIT_STORE),
                            (StateError("state store /x is locked by another run"), EXIT_USAGE)):
        result: list[int] = []
        with cli.exit_codes(result):
            raise error
        err = capsys.readouterr().err
        assert result == [expected]
        assert err.count("\n") == 1 and err.startswith(f"shotrun: error: {error}"), err


def test_a_failed_write_is_its_own_type_and_a_store_that_cannot_open_is_not(
        tmp_path: Path) -> None:
    path = tmp_path / ".shotrun" / "state.sqlite"
    takes = [make_take()]
    with StateStore.open(path) as store:
        with pytest.raises(StateError) as refused:
            StateStore.open(path)  # locked by "another run"
        assert not isinstance(refused.value, StoreWriteFailed)
        store.conn.execute("PRAGMA query_only = ON")  # sqlite refuses writes: read-only disk
        with pytest.raises(StoreWriteFailed, match=r"is the disk full or read-only\?"):
            store.sync(takes, payloads(takes))  # type: ignore[arg-type]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(StateError, match="upgrade shotrun") as newer:
        StateStore.open(path)
    assert not isinstance(newer.value, StoreWriteFailed)


async def test_the_engine_reports_any_store_failure_mid_run_as_a_failed_write(
        tmp_path: Path) -> None:
    """A closed store fails with a plain StateError; the run still stopped mid-way: exit 4."""
    shots = [engine_helpers.Shot(f"s{n}", f"store {n}") for n in range(3)]
    three = engine_helpers.make_manifest(tmp_path, shots)
    broken: list[int] = []

    def break_store(engine: Engine, progress: RunProgress) -> None:
        if progress.in_flight and not broken:
            broken.append(1)
            engine.store.close()

    async with run_emulator(engine_helpers.fast_emulator(processing_time=0.2)) as emu:
        with pytest.raises(StoreWriteFailed, match="closed") as info:
            await engine_helpers.run_engine(three, emu.base_url, on_progress=break_store)
    assert broken and type(info.value.__cause__) is StateError  # chained, message unchanged
    assert str(info.value) == str(info.value.__cause__)
