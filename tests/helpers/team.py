"""Several ``shotrun run`` processes on one PostgreSQL store against one emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.helpers.torture import check_done, env, run_args, run_cli

#: A waiting runner looks again this often (seconds): the tests' runners are quick.
TEAM_FLAGS = ["--team-poll", "0.02"]


def team_args(manifest_path: Path, base_url: str, url: str, *extra: str) -> list[str]:
    """``shotrun run`` of one runner of a team."""
    return run_args(manifest_path, base_url, "--store", url, *TEAM_FLAGS, *extra)


async def runners(args: list[str], count: int) -> list[tuple[int, str, str]]:
    """``count`` runners of ``args`` started together, to their end."""
    return list(await asyncio.gather(*(run_cli(args) for _ in range(count))))


@dataclass(frozen=True)
class TeamAudit:
    statuses: dict[str, str]
    ambiguous: int


def audit_team(url: str, root: Path, count: int) -> TeamAudit:
    """Every take done once, its file in place with the store's hash; ambiguous creations."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT key, status, sha256 FROM takes").fetchall()
        ambiguous = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'ambiguous'").fetchone()
    assert ambiguous is not None
    return TeamAudit(check_done(root, rows, count), int(ambiguous[0]))


async def spawn(args: list[str]) -> asyncio.subprocess.Process:
    """One runner started in the background (its output collected at the end)."""
    return await asyncio.create_subprocess_exec(
        *args, env=env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def until(predicate: Callable[[], bool], procs: list[asyncio.subprocess.Process],
                timeout: float = 120.0) -> None:
    """Until ``predicate()`` holds, while any of ``procs`` still runs."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if all(proc.returncode is not None for proc in procs):
            raise AssertionError("every runner ended before the moment came")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("no progress in time")
        await asyncio.sleep(0.005)


async def ended(proc: asyncio.subprocess.Process, timeout: float = 300.0) -> tuple[int, str, str]:
    """A background runner's exit code and output, once it ends."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
