"""Kept renders come back free in a team too: a take a runner claims is looked at on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.emulator import run_emulator
from tests.helpers.run import FAST_FLAGS, KEY, fast_emulator, main_in_thread, write_manifest

FOUR = "".join(f"  - id: s{n}\n    prompt: \"harbour at dawn {n}\"\n" for n in range(4))


async def test_an_edit_undone_in_a_team_restores_the_kept_renders_for_nothing(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's promise ("undo the edit and run again: the kept render comes back, for 0
    credits") on a team's store: the runner's claim plans the take again, and that plan must
    look at the kept renders on disk as the run's start does, not create the take anew."""
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path, FOUR)
    original = manifest.read_text(encoding="utf-8")
    async with run_emulator(fast_emulator()) as emulator:
        run = ["run", str(manifest), "--base-url", emulator.base_url, *FAST_FLAGS,
               "--store", pg_url, "--team-poll", "0.02"]
        assert await main_in_thread(run) == 0
        manifest.write_text(original.replace("at dawn", "at dusk"), encoding="utf-8")
        assert await main_in_thread(run) == 0
        assert emulator.stats()["creation_requests"] == 8
        manifest.write_text(original, encoding="utf-8")  # the edit undone
        capsys.readouterr()
        assert await main_in_thread(run) == 0
        out = capsys.readouterr().out
        assert "done: 4/4" in out, out
        assert "credits: 0.0 this run" in out, out
        assert emulator.stats()["creation_requests"] == 8  # nothing created again
