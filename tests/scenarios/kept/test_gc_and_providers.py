"""``shotrun gc`` removes exactly the kept files no take can use; a provider switched back
restores every take free, picks kept (issue 21, part 2)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from runner import cli
from runner.core.fsutil import hash_file
from runner.emulator import run_emulator
from runner.manifest import load_manifest
from runner.state.choices import note_take
from tests.helpers.kept import (
    TAKES,
    check_promises,
    run,
    sidecar,
    write_manifest,
)
from tests.helpers.providers import keys
from tests.helpers.run import FAST_FLAGS, KEY, THREE, fast_emulator


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)


def history_files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root / "out")): p.stat().st_size
            for p in (root / "out").glob("*/history/*/*") if p.is_file()}


async def test_gc_lists_exactly_the_unreachable_files_and_frees_what_it_said(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        for prompt in ("waves on sand", "waves at night"):  # two renders of s02 kept
            write_manifest(tmp_path, THREE.replace("waves on rocks", prompt))
            assert await run([str(manifest)], emulator.base_url) == 0
        write_manifest(tmp_path)  # back to the first: its render is restored
        assert await run([str(manifest)], emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
    kept = history_files(tmp_path)
    assert len(kept) == 4  # two renders, each video and sidecar
    # Reachable again: the manifest edited to the "sand" prompt once more.
    write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand"))
    sand = {name for name in kept
            if sidecar((tmp_path / "out" / name).with_suffix(".mp4"))["request"]["prompt"]
            == "waves on sand"}
    night = set(kept) - sand
    assert len(sand) == len(night) == 2
    capsys.readouterr()
    assert cli.main(["gc", str(manifest), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    listed = {line.split()[0] for line in dry.splitlines() if line.startswith("  ")}
    assert listed == night
    total = sum(kept[name] for name in night)
    assert f"2 files, would free {total} bytes" in dry and "nothing was sent or spent" in dry
    assert history_files(tmp_path) == kept  # a dry run removes nothing
    assert cli.main(["gc", str(manifest)]) == 0
    real = capsys.readouterr().out
    assert f"2 files, freed {total} bytes" in real
    assert set(history_files(tmp_path)) == sand
    assert (tmp_path / "out" / "s02" / "take-1.mp4").is_file()  # current outputs stay
    check_promises(tmp_path, accepted, TAKES + 2, dry, real)


def test_gc_keeps_a_kept_file_a_pick_names(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    write_manifest(tmp_path, THREE.replace("a lighthouse at dawn", "a lighthouse at dusk"))
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    # The dawn render of take 2, kept, made distinct (the emulator renders takes alike).
    (kept,) = (tmp_path / "out" / "s01" / "history").glob("*/take-2.mp4")
    kept.write_bytes(kept.read_bytes() + b"\0")
    digest, size = hash_file(kept)
    data = sidecar(kept) | {"sha256": digest, "size": size}
    kept.with_suffix(".json").write_text(json.dumps(data))
    conn = sqlite3.connect(tmp_path / "out" / ".shotrun" / "state.sqlite")
    with conn:  # a pick of take 2 as it was rendered before the edit
        conn.execute("INSERT OR REPLACE INTO picks (shot_id, take, sha256, picked_at) VALUES "
                     "('s01', 2, ?, 0)", (digest,))
    conn.close()
    write_manifest(tmp_path, THREE.replace("a lighthouse at dawn", "a lighthouse at noon"))
    capsys.readouterr()
    assert cli.main(["gc", str(manifest), "--dry-run"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("  ")}
    # The dawn renders are unreachable under "noon", but take 2's picked one stays.
    assert {Path(name).name for name in listed} == {"take-1.mp4", "take-1.json"}


@pytest.mark.parametrize("argv", [["gc"], ["gc", "MANIFEST", "--force"],
                                  ["gc", "MANIFEST", "--dry-run=yes"]])
def test_gc_bad_input_is_one_line_and_exit_2(argv: list[str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    args = [str(manifest) if arg == "MANIFEST" else arg for arg in argv]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


async def test_a_provider_switched_and_back_restores_every_take_picks_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    kling_key = keys(monkeypatch, "kling")
    manifest = write_manifest(tmp_path)
    async with run_emulator(fast_emulator()) as gateway, \
            run_emulator(fast_emulator(api_key=kling_key), provider="kling") as kling:
        assert await run([str(manifest)], gateway.base_url) == 0
        assert cli.main(["pick", str(manifest), "s01", "2"]) == 0
        # The note path `shotrun review` takes (the page's one code path for notes).
        assert note_take(load_manifest(manifest), "s02/take-1", "keep the spray")
        picked = sidecar(tmp_path / "out" / "s01" / "take-2.mp4")["task_id"]
        assert await run([str(manifest), "--provider", "kling"], kling.base_url) == 0
        first = (gateway.stats()["accepted_tasks"], kling.stats()["accepted_tasks"])
        assert await run([str(manifest), "--provider", "gateway"], gateway.base_url) == 0
        after = (gateway.stats()["accepted_tasks"], kling.stats()["accepted_tasks"])
    out = capsys.readouterr().out
    assert first == after == (TAKES, TAKES)  # back to the gateway: 0 new creations
    assert "restored from kept renders: 3 takes (0 credits)" in out
    assert sidecar(tmp_path / "out" / "s01" / "take-2.mp4")["task_id"] == picked
    assert cli.main(["status", str(manifest), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    row = next(t for t in status["takes"] if t["id"] == "s01/take-2")
    assert row["picked"] and row["status"] == "done"
    assert row["task_id"] == picked and row["attempts"] == 1  # the render's own story
    noted = next(t for t in status["takes"] if t["id"] == "s02/take-1")
    assert noted["note"] == "keep the spray"  # the note followed its render back


def test_gc_refuses_beside_a_run_and_removes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runner.state import StateStore

    manifest = write_manifest(tmp_path)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand"))
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    write_manifest(tmp_path, THREE.replace("waves on rocks", "waves at night"))
    kept = history_files(tmp_path)
    assert kept
    capsys.readouterr()
    with StateStore.open(tmp_path / "out" / ".shotrun" / "state.sqlite"):  # a run's lock
        assert cli.main(["gc", str(manifest)]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""
    assert history_files(tmp_path) == kept
