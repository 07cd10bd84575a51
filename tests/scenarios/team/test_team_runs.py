"""Issue 24's promises, as a studio would see them: several runners, one shot list."""

from __future__ import annotations

from pathlib import Path

from runner.emulator import run_emulator
from tests.helpers.team import audit_team, runners, team_args
from tests.helpers.torture import emulator, manifest

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
