"""Two runners of one team with different manifests (one edited a prompt) (issue 24's review).

A runner whose manifest disagrees with the store about a take (another runner's manifest
changed it since this one planned) must not create it from its own, older, request: the
store would record the render as the other manifest's, and that edit would be lost for good
(a later run finds the take done). It leaves the take, saying why; nothing is created.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from runner.emulator import run_emulator
from runner.manifest import load_manifest
from runner.state.pgstore import PgStore
from runner.wire.payload import FingerprintPayloads
from tests.helpers.team import ended, spawn, team_args, until
from tests.helpers.torture import emulator, manifest

TAKES = 20
EDITED = f"s{TAKES - 1:03}/take-1"


def _sync_edited(root: Path, url: str, base_url: str) -> None:
    """What another runner's start does with a manifest whose last prompt was edited."""
    edited = root / "edited"
    edited.mkdir()
    path = manifest(edited, TAKES)
    path.write_text(path.read_text().replace(f'"torture shot s {TAKES - 1}"',
                                             '"torture shot s EDITED"'))
    loaded = load_manifest(path, None, base_url)
    store = PgStore.open_url(url)
    try:
        takes = loaded.takes
        store.sync(takes, FingerprintPayloads(takes, loaded.api.wire, loaded.api.provider),
                   retry_failed=False, ambiguous="hold")
    finally:
        store.close()


async def test_a_runner_does_not_create_a_take_another_manifest_changed(
    tmp_path: Path, pg_url: str,
) -> None:
    path = manifest(tmp_path, TAKES)
    async with run_emulator(emulator(processing_time=0.3, seed=41)) as emu:
        proc = await spawn(team_args(path, emu.base_url, pg_url, "--concurrency", "1"))
        await until(lambda: emu.stats()["accepted_tasks"] >= 1, [proc])
        _sync_edited(tmp_path, pg_url, emu.base_url)
        code, out, err = await ended(proc, timeout=120)
        stats = emu.stats()
    with psycopg.connect(pg_url) as conn:
        changed = conn.execute("SELECT COUNT(*) FROM events WHERE key = %s"
                               " AND event = 'fingerprint_changed'", (EDITED,)).fetchone()
        status = conn.execute("SELECT status FROM takes WHERE key = %s", (EDITED,)).fetchone()
    assert changed is not None and changed[0] == 1  # the edit reached the store in time
    assert status is not None and status[0] == "new", (status, out + err)
    assert stats["accepted_tasks"] == TAKES - 1, stats
    assert code == 1, out + err
    assert "another runner's manifest" in out, out
