"""The review server over real HTTP on loopback: the token, the paths it serves, its headers,
and picks and notes reaching the store (``status --json``, ``plan``, the report).

The server is the real one (``ReviewServer`` on 127.0.0.1), requests are raw bytes on a
socket (so nothing normalizes a ``../`` on the way) or aiohttp's client for the event stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from runner import cli
from runner.state import StateStore, store_path_for
from tests.helpers.review import (
    finished_run,
    get,
    plan_json,
    post,
    raw,
    run_manifest,
    serving,
    status_json,
    update_where,
    write_manifest,
)

KEY = "sk-review-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest run to the end once, for the tests that only read."""
    root = tmp_path_factory.mktemp("finished")
    manifest = write_manifest(root)
    run_manifest(manifest)
    (root / "secret.mp4").write_bytes(b"not for the page")
    (root / "out" / "link").symlink_to(root)  # a folder link pointing out of the output
    (root / "out" / "escape.mp4").symlink_to(root / "secret.mp4")
    return manifest


def picks_in(manifest: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(f"file:{manifest.parent / 'out/.shotrun/state.sqlite'}?mode=ro",
                         uri=True) as conn:
        return list(conn.execute("SELECT shot_id, take FROM picks"))


ROUTES = ["/", "/static/review.js", "/static/report.js", "/static/review.css",
          "/files/s01-walk/take-1.mp4", "/events", "/api/state"]


@pytest.mark.parametrize("path", ROUTES)
async def test_a_request_without_the_token_or_with_another_is_refused(
        finished: Path, path: str) -> None:
    async with serving(finished) as server:
        status, _, body = await get(server, path, token=False)
        assert status == 403 and b"token" in body
        status, _, _ = await get(server, path + "?token=" + "x" * len(server.token),
                                 token=False)
        assert status == 403
        if path != "/events":  # a stream, never ending: its 200 is tested with the updates
            status, _, _ = await get(server, path, token=False,
                                     headers=f"X-Shotrun-Token: {server.token}\n")
            assert status == 200


async def test_a_pick_or_a_note_without_the_token_is_refused_and_writes_nothing(
        finished: Path) -> None:
    async with serving(finished) as server:
        for token in ("", "wrong-" + server.token):
            status, _ = await post(server, "/api/pick", {"shot": "s01-walk", "take": 2},
                                   token=token)
            assert status == 403
            status, _ = await post(server, "/api/note", {"key": "s01-walk/take-2",
                                                          "text": "x"}, token=token)
            assert status == 403
    assert picks_in(finished) == []
    with StateStore.open_readonly(store_path_for(finished.parent / "out")) as store:
        assert not any(e.event in ("take_picked", "take_noted") for e in store.events())


@pytest.mark.parametrize("path", [
    pytest.param("/files/../shots.yaml", id="dot-dot"),
    pytest.param("/files/%2e%2e/shots.yaml", id="encoded-dot-dot"),
    pytest.param("/files/s01-walk/..%2f..%2fshots.yaml", id="encoded-slash"),
    pytest.param("/files//etc/passwd", id="absolute"),
    pytest.param("/files/link/secret.mp4", id="folder-symlink-out"),
    pytest.param("/files/escape.mp4", id="file-symlink-out"),
    pytest.param("/files/.shotrun/state.sqlite", id="the-store"),
    pytest.param("/files/.shotrun/run.log", id="the-log"),
    pytest.param("/files/s01-walk/take-1.json", id="a-sidecar"),
    pytest.param("/files/../../../../../../etc/passwd", id="far-up"),
])
async def test_a_path_outside_the_output_folder_or_not_a_video_is_refused(
        finished: Path, path: str) -> None:
    async with serving(finished) as server:
        status, _, body = await get(server, path)
    assert status in (403, 404), body
    assert b"not for the page" not in body and b"root:" not in body
    assert b"SQLite" not in body and b"take_" not in body


async def test_videos_and_posters_of_the_output_folder_are_served_with_ranges(
        finished: Path) -> None:
    video = finished.parent / "out" / "s01-walk" / "take-1.mp4"
    async with serving(finished) as server:
        status, _, body = await get(server, "/files/s01-walk/take-1.mp4")
        assert status == 200 and body == video.read_bytes()
        status, _, body = await get(server, "/files/s01-walk/take-1.mp4",
                                          headers="Range: bytes=0-99\n")
        assert status == 206 and body == video.read_bytes()[:100]
        page = (await get(server, "/"))[2].decode()
        poster = page.split('poster="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        assert poster.startswith("/files/.shotrun/posters/")
        status, _, body = await get(server, poster.split("?")[0])
        assert status == 200 and body[:2] == b"\xff\xd8"  # a JPEG
        assert (await get(server, "/files/s09/take-1.mp4"))[0] == 404


async def test_another_host_name_or_origin_is_refused(finished: Path) -> None:
    async with serving(finished) as server:
        # A DNS-rebinding page reaches 127.0.0.1 under its own name.
        status, _, _ = await raw(server.port, f"GET /?token={server.token} HTTP/1.1\n"
                                 "Host: evil.example:80\nConnection: close\n")
        assert status == 403
        status, _ = await post(server, "/api/pick", {"shot": "s01-walk", "take": 2},
                               headers="Origin: http://127.0.0.1:1\n")
        assert status == 403
        status, _ = await post(server, "/api/pick", {"shot": "s01-walk", "take": 2},
                               headers=f"Origin: http://127.0.0.1:{server.port}\n")
        assert status == 200
    assert picks_in(finished) == [("s01-walk", 2)]
    with StateStore.open(store_path_for(finished.parent / "out")) as store:
        store.conn.execute("DELETE FROM picks")  # leave the shared run as it was


async def test_every_answer_has_the_policy_and_the_page_escapes_the_prompt(
        finished: Path) -> None:
    async with serving(finished) as server:
        for path in ("/", "/static/review.js", "/files/s01-walk/take-1.mp4", "/api/state",
                     "/files/../x"):
            _, headers, _ = await get(server, path)
            policy = headers["content-security-policy"]
            assert "script-src 'self';" in policy and "default-src 'none'" in policy
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
        _, _, body = await get(server, "/")
    page = body.decode()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "<script>window" not in page
    assert page.count("<script") == 2  # the page's own two, from the server
    assert page.count('<script src="/static/') == 2


async def test_the_api_key_never_reaches_the_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_API_KEY", KEY)
    manifest = write_manifest(tmp_path, f'  - id: s01\n    prompt: "leaked {KEY} here"\n')
    await asyncio.to_thread(run_manifest, manifest)
    async with serving(manifest) as server:
        texts = [(await get(server, path))[2] for path in ("/", "/api/state")]
        status, answer = await post(server, "/api/note", {"key": "s01/take-1",
                                                          "text": f"the key is {KEY}"})
        assert status == 200
        update = await update_where(server, lambda u: "[REDACTED]" in json.dumps(u))
    for text in [*texts, json.dumps(update).encode(), json.dumps(answer).encode()]:
        assert KEY.encode() not in text
    assert b"leaked [REDACTED] here" in texts[0]


async def test_a_pick_and_a_note_reach_status_plan_and_the_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path)
    await asyncio.to_thread(run_manifest, manifest)
    before = status_json(manifest, capsys)
    other = next(row for key, row in before.items()
                 if key.startswith("s01-walk/") and not row["chosen"])
    note = "too dark <script>alert(1)</script> & blurry"
    async with serving(manifest) as server:
        status, answer = await post(server, "/api/pick", {"shot": "s01-walk",
                                                          "take": other["take"]})
        assert (status, answer["state"]) == (200, "saved"), answer
        status, answer = await post(server, "/api/note", {"key": other["id"], "text": note})
        assert (status, answer["state"]) == (200, "saved"), answer
        update = await update_where(server, lambda u: "s02-turn" in u["sections"]
                                    and "data-next" in u["sections"]["s02-turn"])
        state = json.loads((await get(server, "/api/state"))[2])
        status, answer = await post(server, "/api/pick", {"shot": "s01-walk", "take": 3})
        assert status == 400 and "has takes 1 to 2, not 3" in answer["message"]
    rows = status_json(manifest, capsys)
    assert rows[other["id"]]["picked"] and rows[other["id"]]["note"] == note
    assert all(row["note"] is None for key, row in rows.items() if key != other["id"])
    # What the page says will re-render is what plan says, in plan's words.
    planned = plan_json(manifest, capsys)
    again = {key: status for key, status in planned.items()
             if status["state"] in ("will run", "will retry") and before[key]["status"] == "done"}
    assert again == {"s02-turn/take-1": {"state": "will run", "reason": "source changed"}}
    assert state["rerender"] == again
    assert 'data-next="will run" data-reason="source changed"' in update["sections"]["s02-turn"]
    # The static report shows the note, escaped.
    assert cli.main(["report", str(manifest)]) == 0
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "too dark &lt;script&gt;alert(1)&lt;/script&gt; &amp; blurry" in report
    assert "<script>alert" not in report


async def test_while_a_run_holds_the_store_picks_and_notes_wait_and_are_saved_when_it_ends(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, store_path = await finished_run(tmp_path)
    async with serving(manifest) as server:
        writer = StateStore.open(store_path)  # a run would hold it so, for its whole life
        try:
            status, answer = await post(server, "/api/pick", {"shot": "s01-walk", "take": 2})
            assert (status, answer["state"]) == (202, "queued"), answer
            assert answer["message"] == (f"a run is in progress (pid {os.getpid()}): the pick "
                                         "s01-walk take 2 is saved when it ends")
            status, answer = await post(server, "/api/note", {"key": "s02-turn/take-1",
                                                              "text": "keep"})
            assert (status, answer["state"]) == (202, "queued")
            # What can never be saved is refused at once, not kept.
            status, answer = await post(server, "/api/pick", {"shot": "nope", "take": 1})
            assert status == 400 and "no shot 'nope'" in answer["message"]
            waiting = await update_where(server, lambda u: "banner queued" in u["live"]
                                         and "s02-turn/take-1" in u["live"])
            assert f"a run is in progress (pid {os.getpid()})" in waiting["live"]
            assert "waiting for the store: pick s01-walk take 2; note on s02-turn/take-1" \
                in waiting["live"]
            assert picks_in(manifest) == []  # nothing written beside the writer
            assert status_json(manifest, capsys)["s02-turn/take-1"]["note"] is None
        finally:
            writer.close()  # the run ends
        saved = await update_where(server, lambda u: "banner" not in u["live"])
        assert "picked" in saved["sections"]["s01-walk"]
        assert server.pending.wishes() == [] and server.pending.failed == []
    assert picks_in(manifest) == [("s01-walk", 2)]
    assert status_json(manifest, capsys)["s02-turn/take-1"]["note"] == "keep"


async def test_a_waiting_pick_that_cannot_be_saved_any_more_is_said_on_the_page(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, store_path = await finished_run(tmp_path)
    async with serving(manifest) as server:
        writer = StateStore.open(store_path)
        try:
            status, _ = await post(server, "/api/pick", {"shot": "s01-walk", "take": 2})
            assert status == 202
            # The run renders take 2 again meanwhile: it is not finished when its turn comes.
            writer.conn.execute("UPDATE takes SET status = 'new', output_path = NULL"
                                " WHERE key = 's01-walk/take-2'")
        finally:
            writer.close()
        failed = await update_where(server, lambda u: "banner failed" in u["live"])
    assert ("not saved: pick s01-walk take 2: s01-walk/take-2 is not a finished take (new)"
            in failed["live"])
    assert picks_in(manifest) == []


async def test_the_favicon_is_served_without_the_token_and_without_a_warning(
        finished: Path) -> None:
    async with serving(finished) as server:
        with capture_logs() as logs:
            status, headers, body = await get(server, "/favicon.ico", token=False)
            page_status, _, page = await get(server, "/")
        assert status == 200 and headers["content-type"].startswith("image/svg+xml")
        assert body.startswith(b"<svg")
        assert page_status == 200 and b'<link rel="icon" href="/favicon.ico"' in page
        assert [e for e in logs if e["event"] == "review_refused"] == []
        # every other path still needs it
        status, _, _ = await get(server, "/favicon.ico/../static/review.js", token=False)
        assert status == 403
