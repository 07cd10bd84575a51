"""Kept renders come back free, and "done" means the file is on disk (issue 21, parts 2, 4).

Every test drives the CLI (``cli.main``) against an emulator in the test's loop and counts
creations at the emulator, never what shotrun says of itself; each ends with the shared
money checks of :mod:`tests.helpers.promises`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from runner import cli
from runner.emulator import run_emulator
from tests.helpers.kept import TAKES, check_promises, run, sidecar, store_of, write_manifest
from tests.helpers.run import KEY, THREE, fast_emulator


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)


async def test_an_undone_edit_restores_the_kept_render_at_no_cost(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    video = tmp_path / "out" / "s02" / "take-1.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        original, task = digest(video), sidecar(video)["task_id"]
        write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand"))
        assert await run([str(manifest)], emulator.base_url) == 0
        edited = sidecar(video)["task_id"]
        assert edited != task
        write_manifest(tmp_path)  # the edit undone
        before = emulator.stats()["accepted_tasks"]
        capsys.readouterr()
        assert cli.main(["plan", str(manifest), "--json"]) == 0
        planned = json.loads(capsys.readouterr().out)
        assert cli.main(["plan", str(manifest)]) == 0
        table = capsys.readouterr().out
        assert await run([str(manifest)], emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    assert accepted == before == TAKES + 1  # nothing created by the undo
    item = next(i for i in planned["takes"] if i["key"] == "s02/take-1")
    assert item["status"] == {"state": "restore", "reason": "kept render"}
    assert item["credits"] == 0
    assert planned["this_run"]["restore"] == {"takes": 1, "credits": 0}
    assert planned["this_run"]["will_run"]["takes"] == 0
    assert "restore: 1 take from kept renders (0 credits)." in table
    row = next(line for line in table.splitlines() if "s02/take-1" in line)
    assert "restore" in row and "kept render" in row and " 0 " in f"{row} "
    assert "~" not in row  # a restore's 0 is exact, not an estimate
    assert "restore   (kept render)" in captured.out or "(kept render)" in captured.out
    assert "restored from kept renders: 1 take (0 credits)" in captured.out
    assert digest(video) == original and sidecar(video)["task_id"] == task
    # The edited render is kept in turn, by its own fingerprint.
    kept = list((tmp_path / "out" / "s02" / "history").rglob("take-1.mp4"))
    assert len(kept) == 1 and sidecar(kept[0])["task_id"] == edited
    check_promises(tmp_path, accepted - 1, TAKES, captured.out, captured.err)


async def test_a_budget_used_up_while_edited_leaves_the_current_output_in_place(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    video = tmp_path / "out" / "s02" / "take-1.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        original = digest(video)
        write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand"))
        code = await run([str(manifest), "--max-credits", "1"], emulator.base_url)
        accepted = emulator.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    assert code == 1 and accepted == TAKES  # nothing submitted
    assert video.is_file() and digest(video) == original  # still there, not moved aside
    assert not (tmp_path / "out" / "s02" / "history").exists()
    assert cli.main(["status", str(manifest)]) == 0
    status = capsys.readouterr().out
    row = next(line for line in status.splitlines() if "s02/take-1" in line)
    assert "s02/take-1.mp4 (previous render)" in row
    check_promises(tmp_path, accepted, TAKES, captured.out, captured.err, status)


async def test_a_deleted_done_file_is_downloaded_again_without_a_creation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    video = tmp_path / "out" / "s01" / "take-2.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        original = digest(video)
        video.unlink()
        capsys.readouterr()
        assert cli.main(["status", str(manifest)]) == 1
        status = capsys.readouterr().out
        assert await run([str(manifest)], emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    row = next(line for line in status.splitlines() if "s01/take-2" in line)
    assert "missing" in row and "done: 2/3" not in status
    assert "(file missing)" in captured.out and "done: 3/3" in captured.out
    assert digest(video) == original
    check_promises(tmp_path, accepted, TAKES, captured.out, captured.err, status)


async def test_a_changed_done_file_is_set_aside_and_fetched_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    video = tmp_path / "out" / "s02" / "take-1.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        original = video.read_bytes()
        video.write_bytes(b"x" * len(original))  # same size: only the hash tells
        later = video.stat().st_mtime + 1  # rewritten a moment after it was verified
        os.utime(video, (later, later))
        assert await run([str(manifest)], emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    assert "(file changed)" in captured.out and "done: 3/3" in captured.out
    assert video.read_bytes() == original
    changed = tmp_path / "out" / "s02" / "history" / "changed" / "take-1.mp4"
    assert changed.read_bytes() == b"x" * len(original)  # never thrown away
    check_promises(tmp_path, accepted, TAKES, captured.out, captured.err)


async def test_a_deleted_file_comes_back_from_its_kept_render(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A render kept under the same fingerprint (A, B, A again): restored, nothing fetched."""
    manifest = write_manifest(tmp_path)
    video = tmp_path / "out" / "s02" / "take-1.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        original = digest(video)
        history = tmp_path / "out" / "s02" / "history" / "copy"
        history.mkdir(parents=True)
        fp12 = sidecar(video)["fingerprint"][:12]
        kept = tmp_path / "out" / "s02" / "history" / fp12
        history.rename(kept)
        (kept / "take-1.mp4").write_bytes(video.read_bytes())
        (kept / "take-1.json").write_text(video.with_suffix(".json").read_text())
        video.unlink()
        downloads = emulator.stats()["downloads"]
        assert await run([str(manifest)], emulator.base_url) == 0
        stats = emulator.stats()
    captured = capsys.readouterr()
    assert "restore" in captured.out and "(file missing)" in captured.out
    assert "done: 3/3" in captured.out and digest(video) == original
    assert stats["downloads"] == downloads  # restored from disk, nothing fetched
    check_promises(tmp_path, stats["accepted_tasks"], TAKES, captured.out, captured.err)


async def test_a_file_lost_for_good_is_missing_with_the_cost_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    video = tmp_path / "out" / "s02" / "take-1.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        video.unlink()
        conn = sqlite3.connect(store_of(tmp_path))
        with conn:  # its task finished two days ago: the link's documented 24 h are over
            conn.execute("UPDATE takes SET completed_at = completed_at - 172800,"
                         " link_expires_at = link_expires_at - 172800")
        conn.close()
        capsys.readouterr()
        assert cli.main(["plan", str(manifest)]) == 0
        plan = capsys.readouterr().out
        code = await run([str(manifest)], emulator.base_url)
        first = capsys.readouterr()
        again = await run([str(manifest)], emulator.base_url)
        second = capsys.readouterr()
        assert cli.main(["status", str(manifest)]) == 1
        status = capsys.readouterr().out
        accepted = emulator.stats()["accepted_tasks"]
    assert code == again == 1 and accepted == TAKES
    row = next(line for line in plan.splitlines() if "s02/take-1" in line)
    assert "failed" in row and "missing" in row
    for out in (first.out, second.out):
        assert "missing" in out and "about 24.3 credits" in out and "done: 2/3" in out
        assert "--retry-failed" in out
    assert "missing" in next(line for line in status.splitlines() if "s02/take-1" in line)
    check_promises(tmp_path, accepted, TAKES, first.out, first.err, second.out, status)


@pytest.mark.parametrize("moved_video", [False, True])
async def test_a_restore_that_died_half_way_is_finished_by_the_next_run(
        moved_video: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Killed after the kept sidecar was copied into place (and, or not, the video moved),
    before the store recorded it: the next run finds the render whole and restores it."""
    manifest = write_manifest(tmp_path)
    folder = tmp_path / "out" / "s02"
    video = folder / "take-1.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        original, fingerprint = digest(video), sidecar(video)["fingerprint"]
        write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand"))
        assert await run([str(manifest)], emulator.base_url) == 0
        edited = sidecar(video)["fingerprint"]
        write_manifest(tmp_path)
        # What restore_files had done when the run died: the edited render moved aside...
        aside = folder / "history" / edited[:12]
        aside.mkdir()
        for name in ("take-1.mp4", "take-1.json"):
            (folder / name).rename(aside / name)
        # ...the kept sidecar copied into place, and perhaps the video moved.
        kept = folder / "history" / fingerprint[:12]
        (folder / "take-1.json").write_bytes((kept / "take-1.json").read_bytes())
        if moved_video:
            (kept / "take-1.mp4").rename(video)
        assert await run([str(manifest)], emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    assert accepted == TAKES + 1  # the edit's render only
    assert digest(video) == original and sidecar(video)["fingerprint"] == fingerprint
    assert "restored from kept renders: 1 take (0 credits)" in captured.out
    check_promises(tmp_path, accepted - 1, TAKES, captured.out, captured.err)


async def test_a_shot_renamed_and_renamed_back_renders_nothing_new(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        write_manifest(tmp_path, THREE.replace("id: s02", "id: s02-renamed"))
        assert await run([str(manifest)], emulator.base_url) == 0
        renamed = emulator.stats()["accepted_tasks"]
        write_manifest(tmp_path)  # renamed back
        capsys.readouterr()
        assert await run([str(manifest)], emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    assert accepted == renamed and "done: 3/3 (3 from earlier runs)" in captured.out
    check_promises(tmp_path, accepted - 1, TAKES, captured.out, captured.err)


async def test_a_done_file_touched_but_unchanged_stays_done(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its time moved, so it is hashed; its hash is the verified one: nothing to do."""
    manifest = write_manifest(tmp_path)
    video = tmp_path / "out" / "s02" / "take-1.mp4"
    async with run_emulator(fast_emulator()) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        later = video.stat().st_mtime + 60
        os.utime(video, (later, later))
        downloads = emulator.stats()["downloads"]
        capsys.readouterr()
        assert await run([str(manifest)], emulator.base_url) == 0
        stats = emulator.stats()
    captured = capsys.readouterr()
    assert "done: 3/3 (3 from earlier runs)" in captured.out
    assert stats["downloads"] == downloads and not (video.parent / "history").exists()
    check_promises(tmp_path, stats["accepted_tasks"], TAKES, captured.out, captured.err)


CHAIN = """\
  - id: s01
    prompt: "a lighthouse at dawn"
  - id: s02
    prompt: "the keeper walks in"
    start_frame: {from_shot: s01, frame: last}
"""


async def test_an_undone_edit_of_a_source_restores_its_chain_at_no_cost(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """s02 starts from s01's last frame. Editing s01 renders both again; undoing the edit
    puts both kept renders back: s02's was cut from exactly the s01 output restored."""
    manifest = write_manifest(tmp_path, CHAIN)
    second = tmp_path / "out" / "s02" / "take-1.mp4"
    async with run_emulator(fast_emulator(render="full")) as emulator:
        assert await run([str(manifest)], emulator.base_url) == 0
        original = digest(second)
        write_manifest(tmp_path, CHAIN.replace("at dawn", "at dusk"))
        assert await run([str(manifest)], emulator.base_url) == 0
        assert digest(second) != original  # cut from another frame
        before = emulator.stats()["accepted_tasks"]
        write_manifest(tmp_path, CHAIN)  # the edit undone
        capsys.readouterr()
        assert await run([str(manifest)], emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
        again = await run([str(manifest)], emulator.base_url)
        last = emulator.stats()["accepted_tasks"]
    captured = capsys.readouterr()
    assert accepted == before == 4 and again == 0 and last == accepted
    assert digest(second) == original
    assert "restored from kept renders: 2 takes (0 credits)" in captured.out
    assert "done: 2/2 (2 from earlier runs)" in captured.out  # and they stay done
    check_promises(tmp_path, accepted - 2, 2, captured.out, captured.err)
