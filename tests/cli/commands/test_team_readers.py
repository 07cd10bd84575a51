"""Reading and choosing from anywhere: ``status``, ``plan``, ``report``, ``export``, ``pick``,
``review``, ``gc`` and ``store rebuild`` against a team's store in PostgreSQL.

The store's content is a real run on the built-in emulator (SQLite), copied into a throwaway
database by ``shotrun store copy``. The file stays beside it, unpicked: a command that read
the file instead of the database would show it. The database's URL
carries its password; no output may.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from runner.core.storeurl import redact_url
from runner.state.pgstore import PgStore
from runner.state.team import Team
from tests.helpers.review import post, run_manifest, serving, update_where, write_manifest


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review chain (s01-walk with 2 takes, s02-turn from its last frame, s03-credits),
    run to the end once on the embedded store."""
    root = tmp_path_factory.mktemp("team-readers")
    manifest = write_manifest(root)
    run_manifest(manifest)
    return manifest


@pytest.fixture
def team_url(finished: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A database holding the finished run's store (a new one per test)."""
    assert cli.main(["-q", "store", "copy", str(finished), pg_url]) == 0
    capsys.readouterr()
    return pg_url


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def _main(capsys: pytest.CaptureFixture[str], url: str, *words: str) -> tuple[int, str, str]:
    """``shotrun WORDS`` and what it printed, checked for the URL's password."""
    capsys.readouterr()
    code = cli.main(list(words))
    out, err = capsys.readouterr()
    assert _password(url) not in out + err
    return code, out, err


def _status(capsys: pytest.CaptureFixture[str], url: str, manifest: Path,
            *flags: str) -> dict[str, Any]:
    code, out, _ = _main(capsys, url, "status", str(manifest), "--json", *flags)
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    return document


def _picked(document: dict[str, Any]) -> dict[str, int]:
    return {row["shot"]: row["take"] for row in document["takes"] if row["picked"]}


def test_status_reads_the_database_given_by_the_flag_or_the_environment(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_flag = _status(capsys, team_url, finished, "--store", team_url)
    assert by_flag["state"] == redact_url(team_url) and by_flag["run"] is True
    assert {row["status"] for row in by_flag["takes"]} == {"done"}
    assert by_flag["running_pid"] is None
    assert by_flag["team"] == {"runners": [], "takes_claimed": 0}
    monkeypatch.setenv("SHOTRUN_STORE_URL", team_url)
    by_environment = _status(capsys, team_url, finished)
    assert by_environment["state"] == redact_url(team_url)
    assert by_environment["takes"] == by_flag["takes"]
    code, out, _ = _main(capsys, team_url, "status", str(finished))
    assert code == 0 and "no runner is working on it now" in out


def test_a_pick_from_anywhere_lands_in_the_database_and_export_ships_it(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    code, out, _ = _main(capsys, team_url, "pick", str(finished), "s01-walk", "2",
                         "--store", team_url)
    assert code == 0 and "picked s01-walk take 2" in out
    assert _picked(_status(capsys, team_url, finished, "--store", team_url)) == {
        "s01-walk": 2}
    monkeypatch.setenv("SHOTRUN_STORE_URL", "")  # --store set it for this process
    assert _picked(_status(capsys, team_url, finished)) == {}  # the file: untouched
    monkeypatch.setenv("SHOTRUN_STORE_URL", team_url)
    code, out, _ = _main(capsys, team_url, "export", str(finished), str(tmp_path / "cut"),
                         "--format", "csv")
    assert code == 0 and "s01-walk take 2 (picked)" in out
    assert (tmp_path / "cut" / "edit.csv").is_file()


def test_report_and_plan_read_the_database_and_keep_its_password_out(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _status(capsys, team_url, finished, "--store", team_url)["takes"]
    other = next(row for row in before if row["shot"] == "s01-walk" and not row["chosen"])
    with PgStore.open_url(team_url) as store:  # as a review page on another machine would
        store.set_pick("s01-walk", other["take"], other["sha256"])
        store.set_note(other["id"], "the keeper", other["sha256"])
    monkeypatch.setenv("SHOTRUN_STORE_URL", "")  # --store set it for this process
    code, out, _ = _main(capsys, team_url, "report", str(finished), "--store", team_url)
    assert code == 0
    page = (finished.parent / "out" / "report.html").read_text(encoding="utf-8")
    assert "the keeper" in page and _password(team_url) not in page
    monkeypatch.setenv("SHOTRUN_STORE_URL", team_url)
    code, out, _ = _main(capsys, team_url, "plan", str(finished), "--json")
    assert code == 0
    states = {row["key"]: row["status"] for row in json.loads(out)["takes"]}
    # The pick in the database changed s02-turn's source (s01-walk's last frame).
    assert states.pop("s02-turn/take-1")["reason"] == "source changed"
    assert {status["state"] for status in states.values()} == {"done"}


def test_status_says_which_runners_work_on_the_store_and_what_they_hold(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    store = PgStore.open_url(team_url)
    team = Team(store)
    team.join()
    try:
        assert team.claim("s01-walk/take-1") is not None
        assert team.claim("s02-turn/take-1") is not None
        document = _status(capsys, team_url, finished, "--store", team_url)
        [runner] = document["team"]["runners"]
        assert runner["id"] == team.id and runner["pid"] == os.getpid()
        assert runner["takes"] == 2 and document["team"]["takes_claimed"] == 2
        assert 0 < runner["lease_left"] <= team.lease
        code, out, _ = _main(capsys, team_url, "status", str(finished), "--store", team_url)
        assert code == 0
        assert f"1 runner working: {runner['host']} (pid {os.getpid()}) holding 2 takes" in out
        # A runner at work holds no lock a pick must wait for: it is written at once.
        code, out, _ = _main(capsys, team_url, "pick", str(finished), "s03-credits", "1",
                             "--store", team_url)
        assert code == 0 and "picked s03-credits take 1" in out
    finally:
        team.leave()
        store.close()
    assert _status(capsys, team_url, finished, "--store", team_url)["team"]["runners"] == []


def test_gc_reads_the_database_and_waits_for_the_runners(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    copy = tmp_path / "copy"  # gc removes files: a folder of its own
    shutil.copytree(finished.parent, copy, symlinks=True)
    manifest = copy / finished.name
    store = PgStore.open_url(team_url)
    team = Team(store)
    team.join()
    try:
        code, _, err = _main(capsys, team_url, "gc", str(manifest), "--store", team_url)
        assert code == 2
        assert "1 runner is working on the store" in err and "nothing was removed" in err
    finally:
        team.leave()
        store.close()
    code, out, _ = _main(capsys, team_url, "gc", str(manifest), "--dry-run",
                         "--store", team_url)
    assert code == 0 and "nothing was sent or spent" in out


def test_store_rebuild_refuses_a_database_in_one_line(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _main(capsys, team_url, "store", "rebuild", str(finished),
                           "--store", team_url)
    assert code == 2 and out == ""
    assert len(_said(err)) == 1
    assert "embedded SQLite file" in err and redact_url(team_url) in err


def _picks_and_notes(url: str) -> tuple[dict[str, int], dict[str, str]]:
    with PgStore.open_url(url, readonly=True) as store:
        return ({shot: pick.take for shot, pick in store.picks().items()},
                {key: note.text for key, note in store.notes().items()})


async def test_two_review_pages_picking_and_noting_at_once_both_land(
    finished: Path, team_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOTRUN_STORE_URL", team_url)
    async with serving(finished) as first, serving(finished) as second:
        answers = await asyncio.gather(
            post(first, "/api/pick", {"shot": "s01-walk", "take": 2}),
            post(second, "/api/pick", {"shot": "s03-credits", "take": 1}))
        assert [status for status, _ in answers] == [200, 200], answers
        answers = await asyncio.gather(
            post(first, "/api/note", {"key": "s01-walk/take-1", "text": "too dark"}),
            post(second, "/api/note", {"key": "s02-turn/take-1", "text": "lovely turn"}))
        assert [status for status, _ in answers] == [200, 200], answers
        for server in (first, second):
            assert server.pending.wishes() == [] and server.pending.failed == []
        picks, notes = _picks_and_notes(team_url)
        assert picks == {"s01-walk": 2, "s03-credits": 1}
        # Each page shows the other's pick, live (its watcher reads the database).
        await update_where(first, lambda u: "picked-mark" in u["sections"].get(
            "s03-credits", ""))
        await update_where(second, lambda u: "picked-mark" in u["sections"].get(
            "s01-walk", ""))
        assert notes == {"s01-walk/take-1": "too dark", "s02-turn/take-1": "lovely turn"}
        # The same take noted in both pages at once: neither fails, one note stays.
        texts = ("first word", "second word")
        same = await asyncio.gather(*(
            post(server, "/api/note", {"key": "s03-credits/take-1", "text": text})
            for server, text in zip((first, second), texts, strict=True)))
        assert [status for status, _ in same] == [200, 200], same
    assert _picks_and_notes(team_url)[1]["s03-credits/take-1"] in texts
    assert _password(team_url) not in json.dumps(answers)


@pytest.mark.parametrize("command", ["status", "report", "export", "pick", "review"])
def test_a_refused_password_is_one_line_exit_2_without_it(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    command: str,
) -> None:
    wrong = team_url.replace(_password(team_url), "not-the-password-42")
    extra = {"export": [str(tmp_path / "cut")], "pick": ["s01-walk", "1"]}.get(command, [])
    code, out, err = _main(capsys, wrong, command, str(finished), *extra, "--store", wrong)
    assert code == 2 and out == ""
    assert len(_said(err)) == 1 and "refused the password" in err
    assert "not-the-password-42" not in err and not (tmp_path / "cut").exists()


def test_status_of_a_manifest_that_no_longer_loads_still_reads_the_database(
    finished: Path, team_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    broken = tmp_path / "shots.yaml"  # the same output folder, one unknown key more
    text = finished.read_text(encoding="utf-8").replace(
        "output_dir: out", f"output_dir: {finished.parent / 'out'}")
    broken.write_text(text + "no_such_setting: 1\n", encoding="utf-8")
    code, out, err = _main(capsys, team_url, "status", str(broken), "--json",
                           "--store", team_url)
    assert code == 0 and "does not load any more" in err
    document = json.loads(out)
    assert document["state"] == redact_url(team_url)
    assert {row["status"] for row in document["takes"]} == {"done"}


def _said(err: str) -> list[str]:
    """The lines of ``err`` but the warning that a password on the command line is visible
    (these tests give the URL with its password on purpose)."""
    return [line for line in err.strip().splitlines()
            if not line.startswith("shotrun: warning: the password in --store")]
