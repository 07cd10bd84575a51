"""A team's runners that hold different keys of the studio's accounts (issue 24's review).

A machine may hold only the second account's key: it runs, creates only with that account,
never takes the first account's seats, and leaves a task the first account created to a
runner holding that key (polling it with the wrong key would be refused, or worse, be
another account's task).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import psycopg

from runner.emulator import run_emulator
from runner.emulator.settings import Account as EmulatorAccount
from tests.helpers.team import audit_team, team_args, until
from tests.helpers.torture import KEY, emulator, env, manifest

KEY_B = "sk-TEAM-second-account-5a6b7c8d9e0f1a2b"
TWO_ACCOUNTS = (
    "  accounts:\n"
    "    - {name: studio-a, api_key_env: SHOTRUN_API_KEY, concurrency: 3}\n"
    "    - {name: studio-b, api_key_env: SHOTRUN_KEY_B, concurrency: 3}\n"
)
ACCOUNTS = {KEY: EmulatorAccount("studio-a", concurrency_cap=3),
            KEY_B: EmulatorAccount("studio-b", concurrency_cap=3)}


async def _start(args: list[str], *, key_a: bool) -> asyncio.subprocess.Process:
    """A runner holding the second account's key, and the first's when ``key_a``."""
    environ = {**env(), "SHOTRUN_KEY_B": KEY_B}
    if not key_a:
        del environ["SHOTRUN_API_KEY"]
    return await asyncio.create_subprocess_exec(
        *args, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _end(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_a_runner_with_only_the_second_account_s_key_creates_with_it_alone(
    tmp_path: Path, pg_url: str,
) -> None:
    path = manifest(tmp_path, 6, api=TWO_ACCOUNTS)
    async with run_emulator(emulator(processing_time=0.05, seed=21, accounts=ACCOUNTS)) as emu:
        code, text = await _end(await _start(team_args(path, emu.base_url, pg_url),
                                             key_a=False))
        stats = emu.stats()
    assert code == 0, text
    per = stats["accounts"]
    assert per["studio-a"]["creation_requests"] == 0, per
    assert per["studio-b"]["accepted_tasks"] == 6, per
    audit_team(pg_url, tmp_path, 6)


async def test_the_first_account_s_tasks_wait_for_a_runner_with_its_key(
    tmp_path: Path, pg_url: str,
) -> None:
    """A runner holding both keys is killed with tasks of both accounts in flight; the one
    holding only the second key collects the second's and leaves the first's; a run with both
    keys collects those, creating nothing again."""
    path = manifest(tmp_path, 12, api=TWO_ACCOUNTS)
    settings = emulator(processing_time=0.6, queue_time=0.02, seed=22, accounts=ACCOUNTS)
    async with run_emulator(settings) as emu:
        both = await _start(team_args(path, emu.base_url, pg_url, "--lease", "1"), key_a=True)
        await until(lambda: emu.stats()["accounts"]["studio-a"]["accepted_tasks"] >= 2
                    and emu.stats()["accounts"]["studio-b"]["accepted_tasks"] >= 2, [both])
        both.send_signal(signal.SIGKILL)
        await both.wait()
        only_b = await _start(team_args(path, emu.base_url, pg_url, "--lease", "1"),
                              key_a=False)
        code, text = await _end(only_b)
        assert code == 1, text  # the first account's takes are left to its key's holder
        with psycopg.connect(pg_url) as conn:
            left = dict(conn.execute("SELECT account, COUNT(*) FROM takes"
                                     " WHERE status <> 'done' GROUP BY account").fetchall())
        assert set(left) == {"studio-a"} and left["studio-a"] >= 2, (left, text)
        assert text.count("created with account studio-a, whose key this runner does not") \
            == left["studio-a"], text
        code, text = await _end(await _start(team_args(path, emu.base_url, pg_url),
                                             key_a=True))
        stats = emu.stats()
    assert code == 0, text
    assert stats["accounts"]["studio-b"]["accepted_tasks"] + \
        stats["accounts"]["studio-a"]["accepted_tasks"] == stats["accepted_tasks"]
    audit_team(pg_url, tmp_path, 12)
    with psycopg.connect(pg_url) as conn:
        ambiguous = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'ambiguous'").fetchone()
    assert ambiguous is not None
    assert stats["accepted_tasks"] <= 12 + ambiguous[0], stats
