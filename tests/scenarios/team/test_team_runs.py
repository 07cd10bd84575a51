"""Issue 24's promises, as a studio would see them: several runners, one shot list."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import psycopg
import pytest

from runner.emulator import run_emulator
from runner.emulator.settings import Account as EmulatorAccount
from runner.state.pgstore import PgStore
from tests.helpers.postgres import PgServer
from tests.helpers.team import audit_team, ended, runners, spawn, team_args, until
from tests.helpers.torture import KEY, emulator, manifest, run_cli

TAKES = 60


async def test_three_runners_one_account_create_each_take_once(
    tmp_path: Path, pg_url: str,
) -> None:
    path = manifest(tmp_path, TAKES)
    async with run_emulator(emulator(concurrency_cap=4, processing_time=0.05,
                                     seed=3)) as emu:
        args = team_args(path, emu.base_url, pg_url, "--concurrency", "4")
        results = await runners(args, 3)
        stats = emu.stats()
    for code, out, err in results:
        assert code == 0, out + err
        assert "team: the shot list has 60 done" in out, out
    assert stats["accepted_tasks"] == TAKES, stats
    assert stats["max_in_flight"] <= 4, stats
    assert stats["rate_limited"] == 0, stats  # the seats kept the runners under the cap
    audit = audit_team(pg_url, tmp_path, TAKES)
    assert audit.ambiguous == 0


async def test_a_team_s_runner_obeys_concurrency_and_submit_rate_flags(
    tmp_path: Path, pg_url: str,
) -> None:
    """Without ``api.accounts`` the one account is ``api.concurrency`` and ``api.submit_rate``,
    and their flags override them in a team as alone (they were dropped: 4 seats, 2/s)."""
    path = manifest(tmp_path, 16)  # run_args passes --submit-rate 0: no pacing
    async with run_emulator(emulator(processing_time=0.5, seed=4)) as emu:
        code, out, err = await run_cli(team_args(path, emu.base_url, pg_url,
                                                 "--concurrency", "8"))
        stats = emu.stats()
    assert code == 0, out + err
    with psycopg.connect(pg_url) as conn:
        seats = conn.execute("SELECT account, COUNT(*) FROM seats GROUP BY account").fetchall()
    assert seats == [("default", 8)]
    # Eight creations at once: at 2 per second, two or three would be in flight at most.
    assert stats["max_in_flight"] == 8, stats
    audit_team(pg_url, tmp_path, 16)


KEY_B = "sk-TEAM-second-account-5a6b7c8d9e0f1a2b"
TWO_ACCOUNTS = (
    "  accounts:\n"
    "    - {name: studio-a, api_key_env: SHOTRUN_API_KEY, concurrency: 4}\n"
    "    - {name: studio-b, api_key_env: SHOTRUN_KEY_B, concurrency: 4}\n"
)


async def test_two_accounts_each_stay_under_their_own_seats(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = manifest(tmp_path, TAKES, api=TWO_ACCOUNTS)
    monkeypatch.setenv("SHOTRUN_KEY_B", KEY_B)  # the runners inherit it
    accounts = {KEY: EmulatorAccount("studio-a", concurrency_cap=4),
                KEY_B: EmulatorAccount("studio-b", concurrency_cap=4)}
    async with run_emulator(emulator(processing_time=0.05, seed=5, accounts=accounts)) as emu:
        results = await runners(team_args(path, emu.base_url, pg_url), 3)
        stats = emu.stats()
    for code, out, err in results:
        assert code == 0, out + err
    per = stats["accounts"]
    assert per["studio-a"]["max_in_flight"] <= 4 and per["studio-b"]["max_in_flight"] <= 4
    assert per["studio-a"]["accepted_tasks"] > 0 and per["studio-b"]["accepted_tasks"] > 0
    assert per["studio-a"]["accepted_tasks"] + per["studio-b"]["accepted_tasks"] == TAKES
    assert stats["rate_limited"] == 0, stats
    audit_team(pg_url, tmp_path, TAKES)
    with psycopg.connect(pg_url) as conn:  # each task is recorded with the account that made it
        used = dict(conn.execute("SELECT account, COUNT(*) FROM takes GROUP BY account"))
    assert used == {"studio-a": per["studio-a"]["accepted_tasks"],
                    "studio-b": per["studio-b"]["accepted_tasks"]}


@pytest.mark.parametrize("provider", ["gateway", "fal", "kling"])
async def test_a_killed_runner_s_takes_are_collected_by_the_others_never_paid_twice(
    tmp_path: Path, pg_url: str, provider: str,
) -> None:
    path = manifest(tmp_path, TAKES)
    rng = random.Random(2412)
    settings = emulator(processing_time=0.3, queue_time=0.02, concurrency_cap=4, seed=7)
    async with run_emulator(settings, provider=provider) as emu:
        args = team_args(path, emu.base_url, pg_url, "--provider", provider,
                         "--concurrency", "4", "--lease", "3")
        procs = [await spawn(args) for _ in range(3)]
        for kill in range(2):  # at a random moment, a random runner; a new one joins after
            target = rng.randint(5, 18) + 20 * kill
            await until(lambda at=target: emu.stats()["accepted_tasks"] >= at, procs)
            victim = procs.pop(rng.randrange(len(procs)))
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            procs.append(await spawn(args))
        results = [await ended(proc) for proc in procs]
        stats = emu.stats()
    for code, out, err in results:
        assert code == 0, out + err
    audit = audit_team(pg_url, tmp_path, TAKES)
    assert stats["accepted_tasks"] - TAKES <= audit.ambiguous, (stats, audit.ambiguous)
    assert stats["max_in_flight"] <= 4 + 1, stats  # a killed runner's seat: see below
    if provider == "kling":  # a lost creation is looked up by its id: never ambiguous
        assert audit.ambiguous == 0 and stats["accepted_tasks"] == TAKES, stats


async def test_racing_runners_never_commit_more_than_the_team_s_cap(
    tmp_path: Path, pg_url: str,
) -> None:
    path = manifest(tmp_path, TAKES, api="  concurrency: 8\n")  # a take costs 24.3 credits
    async with run_emulator(emulator(processing_time=0.05, seed=9)) as emu:
        results = await runners(team_args(path, emu.base_url, pg_url, "--max-credits", "500"), 3)
        stats = emu.stats()
    for code, out, err in results:
        assert code in (0, 1), out + err
    assert any("budget reached" in out for _, out, _ in results)
    with psycopg.connect(pg_url) as conn:
        done = conn.execute("SELECT COUNT(*) FROM takes WHERE status = 'done'").fetchone()
    assert stats["credits_reserved"] <= 500.0, stats  # what the provider billed
    assert done is not None and done[0] * 24.3 <= 500.0
    assert stats["accepted_tasks"] == 20, stats  # 20 × 24.3 = 486: the cap filled, not passed


async def test_a_store_that_cannot_be_used_is_one_line_and_nothing_is_sent(
    tmp_path: Path, pg_server: PgServer, pg_url: str,
) -> None:
    path = manifest(tmp_path, 3)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    newer = pg_server.database()
    PgStore.open_url(newer).close()
    with psycopg.connect(newer, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    cases = {
        "refused the password": pg_server.url("postgres", password="wrong-Secret-42"),
        "cannot reach the database": pg_server.url("postgres").replace(
            f":{pg_server.port}/", ":1/"),
        "another application's tables": pg_url,
        "newer than this shotrun": newer,
        "does not exist": pg_server.url("nowhere"),
    }
    async with run_emulator(emulator()) as emu:
        for what, url in cases.items():
            code, out, err = await run_cli(team_args(path, emu.base_url, url))
            assert code == 2, (what, out, err)
            lines = [line for line in err.strip().splitlines()  # but the --store warning
                     if "password in --store shows" not in line]
            assert len(lines) == 1 and what in lines[0], (what, err)
            assert pg_server.password not in out + err and "wrong-Secret-42" not in out + err
            assert "Traceback" not in out + err
        assert emu.stats()["creation_requests"] == 0


async def test_a_runner_with_no_wait_leaves_the_others_takes_to_them_and_exits_0(
    tmp_path: Path, pg_url: str,
) -> None:
    path = manifest(tmp_path, 6)
    PgStore.open_url(pg_url).close()  # the schema, for the wait below to read
    async with run_emulator(emulator(processing_time=1.0, seed=13)) as emu:
        args = team_args(path, emu.base_url, pg_url)
        first = await spawn(args)

        def all_claimed() -> bool:
            with psycopg.connect(pg_url) as conn:
                row = conn.execute("SELECT COUNT(*) FROM claims WHERE runner <> ''").fetchone()
            return row is not None and row[0] == 6

        await until(all_claimed, [first])
        code, out, err = await run_cli([*team_args(path, emu.base_url, pg_url), "--no-wait"])
        assert code == 0, out + err
        assert "done: 0/0; 6 more with other runners" in out, out
        # The other runner's tasks are not this one's to report as left at the provider.
        assert not [line for line in out.splitlines()
                    if line.startswith("still at") or line.startswith("not started")], out
        first_code, first_out, first_err = await ended(first)
    assert first_code == 0, first_out + first_err
    assert emu.stats()["accepted_tasks"] == 6
