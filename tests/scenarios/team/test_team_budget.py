"""The team's one budget, as each runner's stop line tells it (issue 24's review)."""

from __future__ import annotations

import re
from pathlib import Path

from runner.emulator import run_emulator
from tests.helpers.team import runners, team_args
from tests.helpers.torture import emulator, manifest

STOP = re.compile(r"budget reached: ([\d.]+) of ([\d.]+) credits reserved and the next take "
                  r"\([^,]+, about ([\d.]+) credits\) would exceed it")


async def test_each_runner_s_budget_stop_line_gives_the_team_s_figures(
    tmp_path: Path, pg_url: str,
) -> None:
    """A runner stopped by the shared ledger used to say what it alone had reserved ("48.6 of
    100 reserved and the next take, about 24.3, would exceed it"): a sum that does not pass
    the cap. A refusal by the ledger now gives the ledger's total, which does."""
    path = manifest(tmp_path, 30, api="  concurrency: 8\n")  # a take costs 24.3 credits
    async with run_emulator(emulator(processing_time=0.05, seed=31)) as emu:
        results = await runners(team_args(path, emu.base_url, pg_url, "--max-credits", "100"), 3)
        stats = emu.stats()
    assert stats["accepted_tasks"] == 4, stats  # 4 × 24.3 = 97.2: the cap filled, not passed
    for code, out, err in results:
        assert code == 1, out + err
        found = STOP.search(out)
        assert found is not None, out
        reserved, cap, next_take = (float(value) for value in found.groups())
        assert cap == 100.0
        assert reserved + next_take > cap, out  # what it says would pass the cap does
