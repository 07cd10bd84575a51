"""Links expiring: result links valid ~1 s, downloads throttled and one at a time.

Results queue for the single download slot longer than their link lives, so most links are
dead when their turn comes; every output must still be saved, by asking the task for a fresh
link, without a single resubmission (the renders were paid for once).
"""

from __future__ import annotations

from pathlib import Path

from runner.emulator import run_emulator
from tests.helpers.torture import Scale, audit, emulator, manifest, run_args, run_cli


async def test_expiring_links_are_refreshed_and_every_output_is_saved(
        tmp_path: Path, scale: Scale) -> None:
    count = max(scale.small, 4)
    path = manifest(tmp_path, count)
    # ~33 KB clips at 60 KB/s: half a second each, one at a time, links live 1 s.
    settings = emulator(link_ttl=1.0, download_rate=60_000, seed=21)
    async with run_emulator(settings) as emu:
        code, out, err = await run_cli(run_args(path, emu.base_url, "--downloads", "1",
                                                "--concurrency", str(count)))
        stats = emu.stats()
    assert code == 0, out + err
    audit(tmp_path, count)
    assert stats["expired_link_hits"] > 0, stats  # the scenario really hit dead links
    assert stats["accepted_tasks"] == count  # refreshed, never re-rendered
