"""The store can be lost without losing money (issue 21, part 3).

The output folder keeps a second copy of the ledger: a sidecar beside each video and a
journal of the creations in flight. A deleted or emptied store is rebuilt from it before
anything is created; a damaged one is refused naming ``shotrun store rebuild``, which then
leads to no creation either. Each test runs the CLI against the emulator and ends with the
shared money checks of :mod:`tests.helpers.promises`, counted at the emulator.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from runner import cli
from runner.emulator import run_emulator
from runner.state.dbfile import WriterLock
from tests.helpers.promises import (
    assert_lines_bounded,
    assert_paid_once,
    assert_secret_absent,
    assert_store_bounded,
)
from tests.helpers.run import (
    FAST_FLAGS,
    KEY,
    THREE,
    decodes,
    fast_emulator,
    main_in_thread,
    store_rows,
    wait_for,
    write_manifest,
)
from tests.helpers.torture import KEY as TORTURE_KEY
from tests.helpers.torture import env, run_args, run_cli, shots

TAKES = 3  # THREE: s01 with two takes, s02 with one


def _store(root: Path) -> Path:
    return root / "out" / ".shotrun" / "state.sqlite"


def _remove_store(store: Path) -> None:
    """What a user told the store is damaged does: delete it (its sqlite companions too)."""
    for name in (store.name, store.name + "-wal", store.name + "-shm"):
        (store.parent / name).unlink(missing_ok=True)


def _statuses(store: Path) -> dict[str, str]:
    return dict(store_rows(store))


def _finished_run(tmp_path: Path, base_url: str) -> Path:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), "--base-url", base_url, *FAST_FLAGS]) == 0
    return manifest


async def _run(manifest: Path, base_url: str, *extra: str) -> int:
    code: int = await main_in_thread(["run", str(manifest), "--base-url", base_url,
                                      *FAST_FLAGS, *extra])
    return code


@pytest.mark.parametrize("loss", ["deleted", "emptied"])
async def test_a_lost_store_after_a_finished_run_is_rebuilt_and_nothing_is_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        loss: str) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    async with run_emulator(fast_emulator()) as emulator:
        manifest = await asyncio.to_thread(_finished_run, tmp_path, emulator.base_url)
        store = _store(tmp_path)
        with sqlite3.connect(store) as conn:
            charged = conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        conn.close()
        capsys.readouterr()
        if loss == "deleted":
            _remove_store(store)
        else:
            store.write_bytes(b"")
        code = await _run(manifest, emulator.base_url, "--json")
        stats = emulator.stats()
    captured = capsys.readouterr()
    assert code == 0, captured
    summary = json.loads(captured.out)
    assert summary["skipped"] == TAKES and summary["all_done"] is True
    assert stats["accepted_tasks"] == TAKES  # the first run's, none since
    what = "missing" if loss == "deleted" else "empty"
    assert (f"the state store was {what}: rebuilt it from the output folder "
            f"({TAKES} done and verified); nothing was sent") in captured.err
    assert set(_statuses(store).values()) == {"done"} and len(_statuses(store)) == TAKES
    with sqlite3.connect(store) as conn:  # the ledger came back with the takes
        assert conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == charged
    conn.close()
    assert_paid_once(stats["accepted_tasks"], TAKES, store)
    assert_lines_bounded(captured.out, captured.err)
    assert_store_bounded(store)
    assert_secret_absent(tmp_path / "out", KEY)


async def test_a_missing_video_is_not_adopted_its_task_is_collected_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    async with run_emulator(fast_emulator()) as emulator:
        manifest = await asyncio.to_thread(_finished_run, tmp_path, emulator.base_url)
        store = _store(tmp_path)
        video = tmp_path / "out" / "s02" / "take-1.mp4"
        video.unlink()
        _remove_store(store)
        capsys.readouterr()
        code = await _run(manifest, emulator.base_url)
        stats = emulator.stats()
    captured = capsys.readouterr()
    assert code == 0, captured
    assert "2 done and verified, 1 to collect by its task id" in captured.out
    assert stats["accepted_tasks"] == TAKES  # collected by its task id, not created
    decodes(video)
    assert_paid_once(stats["accepted_tasks"], TAKES, store)


@pytest.mark.parametrize("damage", ["not sqlite", "corrupt"])
async def test_a_damaged_store_is_refused_naming_the_rebuild_which_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        damage: str) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    async with run_emulator(fast_emulator()) as emulator:
        manifest = await asyncio.to_thread(_finished_run, tmp_path, emulator.base_url)
        store = _store(tmp_path)
        if damage == "not sqlite":
            store.write_text("these are not the bytes of a database\n")
            detail = "not an SQLite database"
        else:
            data = bytearray(store.read_bytes())
            data[4096:] = b"\xa5" * (len(data) - 4096)  # every page after the first
            store.write_bytes(bytes(data))
            detail = None
        damaged = store.read_bytes()
        before = emulator.stats()
        capsys.readouterr()
        code = await _run(manifest, emulator.base_url)
        refused = capsys.readouterr()
        assert emulator.stats() == before  # nothing sent
        assert code == 2
        lines = refused.err.strip().splitlines()
        assert len(lines) == 1, lines
        if detail is not None:
            assert lines[0] == (
                f"shotrun: error: state store {store} is damaged ({detail}): run "
                f"`shotrun store rebuild {manifest}` to rebuild it from the output folder "
                "(spends nothing; the damaged file is kept beside it)")
        else:
            assert lines[0].startswith(f"shotrun: error: state store {store} is damaged (")
            assert f"run `shotrun store rebuild {manifest}`" in lines[0]
        assert store.read_bytes() == damaged  # refused, not touched

        assert await main_in_thread(["store", "rebuild", str(manifest)]) == 0
        rebuilt = capsys.readouterr().out
        assert f"{TAKES} done and verified" in rebuilt
        assert "nothing was sent and nothing spent" in rebuilt
        kept = [path for path in store.parent.glob("state.sqlite.damaged-*")
                if not path.name.endswith(("-wal", "-shm"))]
        assert [path.read_bytes() for path in kept] == [damaged]
        assert emulator.stats() == before  # the rebuild sent nothing either

        code = await _run(manifest, emulator.base_url)
        stats = emulator.stats()
    captured = capsys.readouterr()
    assert code == 0, captured
    assert stats["accepted_tasks"] == TAKES and "done: 3/3" in captured.out
    assert_paid_once(stats["accepted_tasks"], TAKES, store)
    assert_lines_bounded(refused.out, refused.err, rebuilt, captured.out, captured.err)
    assert_store_bounded(store)
    assert_secret_absent(tmp_path / "out", KEY)


def test_rebuild_refuses_a_store_that_is_not_damaged_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    capsys.readouterr()
    assert cli.main(["store", "rebuild", str(manifest)]) == 2
    assert "is not damaged: nothing to rebuild" in capsys.readouterr().err
    assert cli.main(["store", "rebuild", str(manifest), "--force"]) == 0
    assert list(_store(tmp_path).parent.glob("state.sqlite.replaced-*"))
    assert set(_statuses(_store(tmp_path)).values()) == {"done"}


def test_a_store_deleted_while_a_run_holds_it_is_not_rebuilt_under_that_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    store = _store(tmp_path)
    holder = WriterLock(store)  # a run in progress
    holder.acquire()
    try:
        _remove_store(store)
        capsys.readouterr()
        assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 2
        assert "another shotrun run is using" in capsys.readouterr().err
        assert not store.exists()  # nothing rebuilt beside the live run
    finally:
        holder.release()


def test_store_rebuild_help_says_it_spends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["store", "rebuild", "--help"])
    assert exited.value.code == 0
    assert "spends nothing" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("provider", ["gateway", "kling"])
async def test_store_deleted_with_creations_in_flight_pays_only_what_is_counted_ambiguous(
        tmp_path: Path, provider: str) -> None:
    count = 6
    manifest = write_manifest(tmp_path, shots(count), api="  concurrency: 3\n")
    store = _store(tmp_path)
    async with run_emulator(fast_emulator(api_key=TORTURE_KEY, processing_time=0.5),
                            provider=provider) as emulator:
        args = run_args(manifest, emulator.base_url, "--provider", provider)
        proc = await asyncio.create_subprocess_exec(
            *args, env=env(), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        assert await wait_for(lambda: emulator.stats()["creation_requests"] >= 2, proc)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        journal = tmp_path / "out" / ".shotrun" / "intents.jsonl"
        assert journal.stat().st_size, "a creation in flight leaves its intent on disk"
        _remove_store(store)
        code, out, err = await run_cli([*args, "--json"])
        stats = emulator.stats()
    assert code == 0, (out, err)
    assert_paid_once(stats["accepted_tasks"], count, store)
    assert "rebuilt it from the output folder" in err
    assert set(_statuses(store).values()) == {"done"} and len(_statuses(store)) == count
    if provider == "kling":  # looked up by the external_task_id the intent kept
        assert stats["accepted_tasks"] == count, stats
    assert not journal.exists()  # compacted away: nothing is in flight any more
    assert_lines_bounded(out, err)
    assert_store_bounded(store)
    assert_secret_absent(tmp_path / "out", TORTURE_KEY)


async def test_a_store_deleted_under_a_live_run_is_said_and_rebuilt_by_the_next_run(
        tmp_path: Path) -> None:
    count = 4
    manifest = write_manifest(tmp_path, shots(count), api="  concurrency: 2\n")
    store = _store(tmp_path)
    async with run_emulator(fast_emulator(api_key=TORTURE_KEY, processing_time=0.3)
                            ) as emulator:
        args = run_args(manifest, emulator.base_url)
        proc = await asyncio.create_subprocess_exec(
            *args, env=env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert await wait_for(lambda: emulator.stats()["accepted_tasks"] >= 1, proc)
        _remove_store(store)  # the run holds the lock: it goes on, into the unlinked file
        out, err = (text.decode() for text in await proc.communicate())
        assert proc.returncode == 0, (out, err)
        assert "was deleted or replaced during this run; the next run rebuilds it" in out
        code, out2, err2 = await run_cli(args)
        stats = emulator.stats()
    assert code == 0, (out2, err2)
    assert f"rebuilt it from the output folder ({count} done and verified)" in out2
    assert stats["accepted_tasks"] == count
    assert_paid_once(stats["accepted_tasks"], count, store)
    assert_lines_bounded(out, err, out2, err2)


async def test_an_intent_that_cannot_be_written_sends_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path, THREE)
    async with run_emulator(fast_emulator()) as emulator:
        assert await _run(manifest, emulator.base_url, "--only", "s02") == 0
        journal = tmp_path / "out" / ".shotrun" / "intents.jsonl"
        journal.mkdir()  # in the way of the journal
        capsys.readouterr()
        code = await _run(manifest, emulator.base_url)
        stats = emulator.stats()
        out = capsys.readouterr().out
        assert code == 1
        assert stats["creation_requests"] == 1  # s02's; nothing unaccounted for since
        assert "could not be written beside the store" in out and "nothing was sent" in out
        assert sorted(_statuses(_store(tmp_path)).values()) == ["done", "failed", "failed"]
        _remove_store(_store(tmp_path))  # a rebuild without its journal is refused
        capsys.readouterr()
        assert await _run(manifest, emulator.base_url) == 2
        assert "cannot be read" in capsys.readouterr().err
        assert emulator.stats()["creation_requests"] == 1


def test_plan_on_a_lost_store_shows_what_the_rebuilding_run_would_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    _remove_store(_store(tmp_path))
    capsys.readouterr()
    assert cli.main(["plan", str(manifest)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "will run: 0 takes" in out and f"already done: {TAKES} takes" in out
    assert not _store(tmp_path).exists()  # a preview writes nothing


def test_a_deleted_stores_write_ahead_log_is_set_aside_not_replayed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    store = _store(tmp_path)
    wal = store.with_name(store.name + "-wal")
    conn = sqlite3.connect(store, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE takes SET status = 'new'")  # frames a crash would leave behind
    frames = wal.read_bytes()
    conn.close()
    _remove_store(store)
    wal.write_bytes(frames)  # the store deleted, its log left (as after a kill -9)
    capsys.readouterr()
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "3 takes already done" in capsys.readouterr().out
    kept = list(store.parent.glob("state.sqlite.orphaned-*-wal"))
    assert [path.read_bytes() for path in kept] == [frames]
    with sqlite3.connect(store) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


def test_store_rebuild_refuses_bad_input_and_a_held_store_writing_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["store"]) == 2
    assert "ACTION" in capsys.readouterr().err
    assert cli.main(["store", "rebuild", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    store = _store(tmp_path)
    store.write_text("damaged\n")
    holder = WriterLock(store)  # a run in progress
    holder.acquire()
    try:
        capsys.readouterr()
        assert cli.main(["store", "rebuild", str(manifest)]) == 2
        assert "another shotrun run is using" in capsys.readouterr().err
        assert store.read_text() == "damaged\n"
        assert not list(store.parent.glob("state.sqlite.damaged-*"))
    finally:
        holder.release()


async def test_a_store_lost_while_takes_are_collectable_collects_them_not_pays_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Paid results refused (over ``--max-result-size``), then the store deleted: no
    sidecar holds their task ids, so the intents journal must keep them past the run's end
    for the rebuilt store to collect them, not create them again."""
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path, THREE)
    async with run_emulator(fast_emulator()) as emulator:
        assert await _run(manifest, emulator.base_url, "--max-result-size", "1K") == 1
        store = _store(tmp_path)
        assert set(_statuses(store).values()) == {"failed"}
        _remove_store(store)
        capsys.readouterr()
        code = await _run(manifest, emulator.base_url)
        stats = emulator.stats()
    captured = capsys.readouterr()
    assert code == 0 and "done: 3/3" in captured.out, captured
    assert "3 to collect by its task id" in captured.out
    assert stats["accepted_tasks"] == TAKES
    for video in ("s01/take-1.mp4", "s01/take-2.mp4", "s02/take-1.mp4"):
        decodes(tmp_path / "out" / video)
    assert_paid_once(stats["accepted_tasks"], TAKES, store)
    assert_lines_bounded(captured.out, captured.err)
    assert_secret_absent(tmp_path / "out", KEY)


async def test_a_rebuilt_store_still_counts_what_the_kept_renders_cost(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An edited shot rendered anew keeps its first render under ``history/``; both were
    paid. A lost store rebuilt from the folder must count both against the lifetime budget,
    or the cap protects less after the loss than before it."""
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    async with run_emulator(fast_emulator()) as emulator:
        manifest = await asyncio.to_thread(_finished_run, tmp_path, emulator.base_url)
        manifest.write_text(manifest.read_text().replace("waves on rocks", "waves on sand"))
        assert await _run(manifest, emulator.base_url) == 0
        accepted = emulator.stats()["accepted_tasks"]
        assert accepted == TAKES + 1
        store = _store(tmp_path)
        with sqlite3.connect(store) as conn:
            before = conn.execute("SELECT SUM(credits_reserved) FROM attempts").fetchone()[0]
        conn.close()
        _remove_store(store)
        capsys.readouterr()
        assert await _run(manifest, emulator.base_url, "--json") == 0
        assert emulator.stats()["accepted_tasks"] == accepted
    summary = json.loads(capsys.readouterr().out)
    assert summary["credits"]["total"] == pytest.approx(before)


@pytest.mark.parametrize("store_lost", [False, True])
async def test_a_missing_video_whose_task_is_gone_is_not_paid_again_unasked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, store_lost: bool) -> None:
    """A done take's video deleted, and the provider no longer knows its task (a new
    emulator): the take needs a new creation, which only ``--retry-failed`` makes, whether
    the store was kept or lost and rebuilt from the sidecar in between."""
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    async with run_emulator(fast_emulator()) as emulator:
        manifest = await asyncio.to_thread(_finished_run, tmp_path, emulator.base_url)
    (tmp_path / "out" / "s02" / "take-1.mp4").unlink()
    if store_lost:
        _remove_store(_store(tmp_path))
    capsys.readouterr()
    async with run_emulator(fast_emulator()) as emulator:  # knows none of those tasks
        code = await _run(manifest, emulator.base_url)
        accepted = emulator.stats()["accepted_tasks"]
    out = capsys.readouterr().out
    assert accepted == 0, out
    assert code == 1, out
    assert ("needs a new creation: 1 take; --retry-failed would create 1 new task, about "
            "24.3 credits") in out


async def test_a_store_lost_while_collectable_whose_task_is_gone_is_not_paid_unasked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Paid results refused, the store deleted, and the provider no longer knows the tasks
    (a new emulator): as with the store kept, they need ``--retry-failed``, priced; a plain
    run creates nothing."""
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path, THREE)
    async with run_emulator(fast_emulator()) as emulator:
        assert await _run(manifest, emulator.base_url, "--max-result-size", "1K") == 1
    _remove_store(_store(tmp_path))
    capsys.readouterr()
    async with run_emulator(fast_emulator()) as emulator:  # knows none of those tasks
        code = await _run(manifest, emulator.base_url)
        accepted = emulator.stats()["accepted_tasks"]
    out = capsys.readouterr().out
    assert accepted == 0, out
    assert code == 1, out
    assert ("needs a new creation: 3 takes; --retry-failed would create 3 new tasks, about "
            "72.9 credits") in out
