"""``shotrun review`` as a user starts it: a real process, its URL, Ctrl-C, its exit codes."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import pytest

from runner import cli
from runner.state import StateStore, store_path_for
from runner.state.notes import Note, current_notes
from tests.helpers.review import run_manifest, write_manifest


async def _start(manifest: Path, *extra: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner", "review", str(manifest), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    assert line.startswith("shotrun review: http://127.0.0.1:"), line
    return proc, line.split(": ", 1)[1].strip()


async def _stopped(proc: asyncio.subprocess.Process, signum: int) -> bytes:
    """Send ``signum`` and wait for the process to end (a deadline, not a wait: a review
    that does not stop fails the test, killed, instead of hanging the suite)."""
    proc.send_signal(signum)
    try:
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"shotrun review did not stop on signal {signum}") from None
    return err


async def _post(url: str, path: str, body: dict[str, object]) -> tuple[int, dict[str, str]]:
    from aiohttp import ClientSession

    base, token = url.split("/?token=")
    async with ClientSession() as session, session.post(
            base + path, json=body, headers={"X-Shotrun-Token": token}) as response:
        return response.status, await response.json()


async def test_ctrl_c_stops_it_with_0_and_with_1_when_a_pick_is_left_waiting(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    await asyncio.to_thread(run_manifest, manifest)
    proc, url = await _start(manifest)
    status, answer = await _post(url, "/api/note", {"key": "s01-walk/take-1", "text": "ok"})
    assert (status, answer["state"]) == (200, "saved")
    err = await _stopped(proc, signal.SIGINT)
    assert proc.returncode == 0, err
    assert err.decode().endswith("shotrun review: stopped\n") and b"Traceback" not in err
    # A run holds the store (this process, as a writer) and review is stopped meanwhile.
    proc, url = await _start(manifest)
    writer = StateStore.open(store_path_for(tmp_path / "out"))
    try:
        status, answer = await _post(url, "/api/pick", {"shot": "s01-walk", "take": 2})
        assert (status, answer["state"]) == (202, "queued")
        err = await _stopped(proc, signal.SIGTERM)
    finally:
        writer.close()
    assert proc.returncode == 1, err
    assert (f"shotrun: warning: not saved (a run still holds the store; saving it again spends "
            f"nothing): pick s01-walk take 2: shotrun pick {manifest} s01-walk 2\n"
            ) in err.decode()


def test_a_port_in_use_or_a_bad_manifest_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["review", str(manifest), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"shotrun: error: --port {port}: cannot listen on 127.0.0.1:{port}")
    assert err.count("\n") == 1
    assert cli.main(["review", str(manifest), "--port", "70000"]) == 2
    assert "not a port number (0-65535): 70000" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nshots: 3\n", encoding="utf-8")
    assert cli.main(["review", str(bad)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_review_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["review", "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "--port N" in out and "--open" in out and "token" in out


def test_a_note_holds_while_the_output_is_the_one_it_was_written_about() -> None:
    class Rec:
        def __init__(self, key: str, sha256: str | None) -> None:
            self.key, self.sha256 = key, sha256

    notes = {"a/take-1": Note("a/take-1", "dark", "h1", 0.0),
             "a/take-2": Note("a/take-2", "failed: vague", None, 0.0)}
    assert current_notes(notes, [Rec("a/take-1", "h1"), Rec("a/take-2", None)]) == {
        "a/take-1": "dark", "a/take-2": "failed: vague"}
    # Rendered again: the note about the old video no longer shows.
    assert current_notes(notes, [Rec("a/take-1", "h2"), Rec("a/take-2", "h3")]) == {}


def test_status_json_has_a_note_field_for_every_take(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    assert cli.main(["status", str(manifest), "--json"]) == 0  # no run yet
    rows = json.loads(capsys.readouterr().out)["takes"]
    assert rows and all("note" in row and row["note"] is None for row in rows)
