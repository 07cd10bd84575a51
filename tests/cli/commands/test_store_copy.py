"""``shotrun store copy FROM TO``: what it says, what it refuses, and no password shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from runner.emulator import run_emulator
from runner.state import StateStore
from runner.state.pgstore import PgStore
from tests.helpers.postgres import PgServer
from tests.helpers.run import (
    FAST_FLAGS,
    KEY,
    THREE,
    decodes,
    fast_emulator,
    main_in_thread,
    write_manifest,
)
from tests.helpers.state import fill_solo_store, store_snapshot


def solo(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest whose output folder holds a filled store, and that store's path."""
    manifest = write_manifest(tmp_path, THREE)
    path = tmp_path / "out" / ".shotrun" / "state.sqlite"
    with StateStore.open(path) as store:
        fill_solo_store(store)
    return manifest, path


def test_a_solo_folder_into_the_team_database_and_back(
    tmp_path: Path, pg_server: PgServer, pg_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, path = solo(tmp_path)
    with StateStore.open(path) as store:
        before = store_snapshot(store)
    assert main(["store", "copy", str(manifest), pg_url]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"copied {path} to postgresql://shotrun_test:")
    assert f": 4 takes, 1 picks, 1 notes, {len(before['events'])} events" in lines[0]
    assert "nothing was sent and nothing spent" in lines[1]
    assert pg_server.password not in out
    with PgStore.open_url(pg_url) as team:
        assert store_snapshot(team) == before

    other = tmp_path / "b"
    other.mkdir()
    second = write_manifest(other, THREE)
    assert main(["store", "copy", pg_url, str(second)]) == 0
    capsys.readouterr()
    with StateStore.open(other / "out" / ".shotrun" / "state.sqlite") as copy:
        assert store_snapshot(copy) == before


def test_a_target_holding_takes_is_refused_in_one_line(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, _ = solo(tmp_path)
    assert main(["store", "copy", str(manifest), pg_url]) == 0
    capsys.readouterr()
    assert main(["store", "copy", str(manifest), pg_url]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "already holds 4 takes" in err
    assert "nothing was written" in err


def test_a_source_a_run_holds_is_refused(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, path = solo(tmp_path)
    with StateStore.open(path):
        assert main(["store", "copy", str(manifest), pg_url]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "another shotrun run is using" in err
    assert "copy once that run has ended" in err


def test_the_same_store_by_manifest_and_by_path_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, path = solo(tmp_path)
    assert main(["store", "copy", str(manifest), str(path)]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "the same store" in err


def test_a_wrong_password_is_one_line_without_the_password(
    tmp_path: Path, pg_server: PgServer, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, _ = solo(tmp_path)
    url = pg_server.url("postgres", password="Wr0ng-secret-pw")
    assert main(["store", "copy", str(manifest), url]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "refused the password" in err and "PGPASSWORD" in err
    assert "Wr0ng-secret-pw" not in err and pg_server.password not in err


def test_a_missing_source_is_refused_and_the_target_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert main(["store", "copy", str(tmp_path / "nowhere.sqlite"), str(manifest)]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "no store at" in err
    assert not (tmp_path / "out").exists()


def test_another_database_s_url_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, _ = solo(tmp_path)
    assert main(["store", "copy", str(manifest), "mysql://u:hunter22@h/db"]) == 2
    _, err = capsys.readouterr()
    assert "is not a PostgreSQL URL" in err and "hunter22" not in err


def test_the_help_names_the_three_kinds_of_place(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["store", "copy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("postgresql://", "state.sqlite", "manifest", "already holds takes",
                  "spends nothing", "runners, claims, seats"):
        assert words in text


FOUR = "".join(f"  - id: s{n}\n    prompt: \"copied shot {n}\"\n" for n in range(4))


async def test_a_run_on_a_copied_store_creates_nothing(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A solo run's store, copied to the team's database and from there into another folder
    (without the videos): that folder's run collects every take from its task (the task
    ids came along) and the emulator counts no new creation."""
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    first = tmp_path / "solo"
    second = tmp_path / "elsewhere"
    first.mkdir()
    second.mkdir()
    solo_manifest = write_manifest(first, FOUR)
    other_manifest = write_manifest(second, FOUR)
    async with run_emulator(fast_emulator()) as emulator:
        run = ["--base-url", emulator.base_url, *FAST_FLAGS]
        assert await main_in_thread(["run", str(solo_manifest), *run]) == 0
        assert emulator.stats()["accepted_tasks"] == 4
        assert await main_in_thread(["store", "copy", str(solo_manifest), pg_url]) == 0
        assert await main_in_thread(["store", "copy", pg_url, str(other_manifest)]) == 0
        capsys.readouterr()
        assert await main_in_thread(["run", str(other_manifest), *run]) == 0
        out = capsys.readouterr().out
        assert "done: 4/4" in out, out
        assert out.count("download (file missing)") == 4  # collected from their tasks
        assert "credits: 0.0 this run, 97.2 in total" in out  # the ledger came along
        assert emulator.stats()["accepted_tasks"] == 4  # nothing created again
    for n in range(4):
        decodes(second / "out" / f"s{n}" / "take-1.mp4")


async def test_a_team_run_on_a_copied_solo_store_creates_nothing(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's "a team starts from one person's solo folder without paying again": the
    solo store copied into the team's database, ``run --store URL`` on the same folder has
    nothing to create; once that runner has ended, the team's store copies back."""
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path, FOUR)
    async with run_emulator(fast_emulator()) as emulator:
        run = ["run", str(manifest), "--base-url", emulator.base_url, *FAST_FLAGS]
        assert await main_in_thread(run) == 0
        assert emulator.stats()["accepted_tasks"] == 4
        assert await main_in_thread(["store", "copy", str(manifest), pg_url]) == 0
        capsys.readouterr()
        assert await main_in_thread([*run, "--store", pg_url, "--team-poll", "0.02"]) == 0
        out = capsys.readouterr().out
        assert "done: 4/4" in out, out
        assert emulator.stats()["accepted_tasks"] == 4  # the team created nothing again
    back = tmp_path / "back" / ".shotrun" / "state.sqlite"
    assert main(["store", "copy", pg_url, str(back)]) == 0  # the runner's lease has ended
    with StateStore.open(back) as store:
        assert {r.status.value for r in store.records()} == {"done"}
