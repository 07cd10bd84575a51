"""A team's runners when the database misbehaves under them (issue 24's review).

The server drops a runner's connection (a restart, a failover, an idle timeout): the runner
connects again at its next transaction and carries on, instead of waiting forever on a
connection that is gone. The database out of reach for longer than the runner's lease: the
runner stops in one line (exit 4), as a runner whose store fails does, instead of waiting
forever for takes it can no longer see released.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from runner.emulator import run_emulator
from runner.state.pgstore import PgStore
from tests.helpers.team import ended, spawn, team_args, until
from tests.helpers.torture import emulator, manifest, run_cli

TAKES = 4
KEYS = [f"s{n:03}/take-1" for n in range(TAKES)]


def _another_runner_holds_every_take(url: str) -> None:
    """A live runner (a row with a long lease) that claims every take first."""
    PgStore.open_url(url).close()  # the schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO runners (id, host, pid, started_at, lease_until)"
                     " VALUES ('elsewhere', 'other-machine', 1, 0,"
                     " EXTRACT(EPOCH FROM now()) + 600)")
        for key in KEYS:
            conn.execute("INSERT INTO claims (key, runner, claimed_at) VALUES (%s,"
                         " 'elsewhere', 0) ON CONFLICT (key) DO UPDATE"
                         " SET runner = 'elsewhere'", (key,))


#: The waiting runner's heartbeat, as the server last saw its connection.
_HEARTBEAT_SEEN = ("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'shotrun'"
                   " AND query LIKE 'SELECT key FROM claims WHERE runner IN%'")


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


async def test_a_runner_whose_connection_the_server_dropped_connects_again(
    tmp_path: Path, pg_url: str,
) -> None:
    path = manifest(tmp_path, TAKES)
    _another_runner_holds_every_take(pg_url)
    async with run_emulator(emulator(processing_time=0.05, seed=11)) as emu:
        proc = await spawn(team_args(path, emu.base_url, pg_url))
        # It planned the shot list, found every take held elsewhere, and waits: its heartbeat
        # looks at the claims (a connection dropped inside a transaction stops a run, exit 4:
        # not what this test is about).
        await until(lambda: _count(pg_url, _HEARTBEAT_SEEN) == 1, [proc])
        with psycopg.connect(pg_url, autocommit=True) as conn:
            dropped = conn.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'shotrun'").fetchone()
            assert dropped is not None and dropped[0] == 1
            # The other runner lets its takes go: the waiting one takes them up.
            conn.execute("UPDATE claims SET runner = ''")
        code, out, err = await ended(proc, timeout=60)
        stats = emu.stats()
    assert code == 0, out + err
    assert "done: 4/4" in out, out
    assert stats["accepted_tasks"] == TAKES, stats


_LISTENING = ("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'shotrun listen'"
              " AND query LIKE 'LISTEN%'")


async def test_a_runner_listens_again_when_its_listening_connection_drops(
    tmp_path: Path, pg_url: str,
) -> None:
    """The wake-ups (NOTIFY) come back after the server dropped the listening connection:
    the waiting runner then starts the takes another runner lets go."""
    path = manifest(tmp_path, TAKES)
    _another_runner_holds_every_take(pg_url)
    async with run_emulator(emulator(processing_time=0.05, seed=12)) as emu:
        proc = await spawn(team_args(path, emu.base_url, pg_url, "--team-poll", "30"))
        await until(lambda: _count(pg_url, _LISTENING) == 1, [proc])
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = 'shotrun listen'")
        await until(lambda: _count(pg_url, _LISTENING) == 0, [proc])
        await until(lambda: _count(pg_url, _LISTENING) == 1, [proc])  # listening again
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE claims SET runner = ''")
            conn.execute("SELECT pg_notify('shotrun_claims', '')")  # as a runner letting go
        code, out, err = await ended(proc, timeout=25)  # well before its 30 s look
    assert code == 0, out + err
    assert "done: 4/4" in out, out


@contextlib.asynccontextmanager
async def cuttable(url: str) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """``url`` through a TCP relay on loopback; setting the event cuts every connection and
    refuses new ones (a network cut between one runner and the database)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    cut = asyncio.Event()
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if cut.is_set():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, port)
        both = [asyncio.ensure_future(pipe(reader, up_writer)),
                asyncio.ensure_future(pipe(up_reader, writer))]
        pipes.update(both)
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        writer.close()
        up_writer.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    relay_port = server.sockets[0].getsockname()[1]
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{relay_port}"

    async def cutter() -> None:
        await cut.wait()
        server.close()
        for task in pipes:
            task.cancel()

    watcher = asyncio.ensure_future(cutter())
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), cut
    finally:
        cut.set()
        await watcher
        server.close()


async def test_a_runner_cut_from_the_database_past_its_lease_stops_in_one_line(
    tmp_path: Path, pg_url: str,
) -> None:
    path = manifest(tmp_path, TAKES)
    _another_runner_holds_every_take(pg_url)
    async with cuttable(pg_url) as (url, cut), run_emulator(emulator()) as emu:
        proc = await spawn(team_args(path, emu.base_url, url, "--lease", "1"))
        await until(lambda: _count(pg_url, "SELECT COUNT(*) FROM takes") == TAKES
                    and _count(pg_url, "SELECT COUNT(*) FROM runners") == 2, [proc])
        cut.set()
        code, out, err = await ended(proc, timeout=60)
        stats = emu.stats()

    assert code == 4, out + err
    errors = [line for line in err.splitlines() if line.startswith("shotrun: error:")]
    assert len(errors) == 1 and "state store" in errors[0], err
    assert "Traceback" not in out + err
    assert stats["creation_requests"] == 0, stats


async def test_a_runner_beside_a_creation_on_the_wire_counts_no_ambiguous_one(
    tmp_path: Path, pg_url: str,
) -> None:
    """Another live runner has a creation on the wire (``submitting``) when this one starts:
    its answer is not lost, only not back yet. This runner's plan and summary used to call
    it "ambiguous (each may have been billed)"."""
    path = manifest(tmp_path, TAKES)
    async with run_emulator(emulator(processing_time=0.05, seed=12)) as emu:
        code, out, err = await run_cli(team_args(path, emu.base_url, pg_url))
        assert code == 0, out + err
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE takes SET status = 'submitting' WHERE key = %s", (KEYS[0],))
        _another_runner_holds_every_take(pg_url)
        code, out, err = await run_cli(team_args(path, emu.base_url, pg_url, "--no-wait"))
    assert code in (0, 1), out + err  # 1: a take left to the other runner, not done here
    assert "ambiguous" not in out + err, out + err
