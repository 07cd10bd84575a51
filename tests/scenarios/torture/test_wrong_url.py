"""A wrong base URL fails fast, in one line naming the URL, and costs the next run nothing.

Before the gateway has answered once in a run, a refused connection or an answer that is
plainly not the gateway's (an HTML page, a 404 on the creation endpoint) is most likely a
wrong ``api.base_url``: the run tries at most ``min(--retries, 2)`` more times and stops,
instead of riding out minutes of backoff meant for a blip in the middle of a night's run.

No test here times anything. The runs are given ``--backoff-base/--backoff-cap 600``: had the
patient policy kicked in, the run would sleep for minutes and
:func:`tests.helpers.torture.run_cli` would report a hang. What is asserted is what happened:
the number of connection attempts (the store's ``take_not_sent`` events: each is a creation
that certainly never left), the requests a fake server received, the store's statuses.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web

from runner.emulator import run_emulator
from tests.helpers.torture import (
    KEY,
    audit,
    emulator,
    manifest,
    relay,
    run_args,
    run_cli,
    serve,
    store_path,
    url_of,
)

PATIENT = ("--backoff-base", "600", "--backoff-cap", "600")  # a retry here would be a hang
HANG = 60.0  # run_cli's limit: far above a fast failure, far below the patient policy


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def store_rows(root: Path, sql: str) -> list[Any]:
    with sqlite3.connect(store_path(root)) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


def one_line(out: str, err: str, expected: str) -> None:
    """``expected`` is said, no traceback, never the key."""
    text = out + err
    assert expected in text, text
    assert "Traceback" not in text and KEY not in text


async def test_nothing_listening_stops_at_once_and_the_next_run_renders_everything(
        tmp_path: Path) -> None:
    path = manifest(tmp_path, 3)
    base = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run_cli(
        run_args(path, base, "--retries", "0", "--concurrency", "1", *PATIENT), timeout=HANG)
    assert code == 1
    one_line(out, err, f"stopped: cannot connect to the gateway at {base} (connection "
                       "refused): check api.base_url or --base-url")
    assert "not submitted: 3" in out
    # --retries 0: one attempt, no retry; the other takes were never tried.
    assert len(store_rows(tmp_path, "SELECT key FROM events WHERE event = 'take_not_sent'")) == 1
    # Nothing paid, nothing failed for good: every take is new for the next run.
    statuses = store_rows(tmp_path, "SELECT status, failure_kind, task_id FROM takes")
    assert statuses == [("new", None, None)] * 3
    async with run_emulator(emulator()) as emu:
        code, out, _ = await run_cli(run_args(path, emu.base_url))
        accepted = emu.stats()["accepted_tasks"]
    assert code == 0, out
    audit(tmp_path, 3)
    assert accepted == 3


async def test_a_refused_first_contact_is_retried_quickly_within_retries(tmp_path: Path) -> None:
    path = manifest(tmp_path, 2)
    base = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run_cli(run_args(path, base + "/", "--concurrency", "1", *PATIENT),
                                   timeout=HANG)
    assert code == 1
    one_line(out, err, f"cannot connect to the gateway at {base} (connection refused)")
    # The default --retries 2 allows two quick retries (three attempts) in the run, whichever
    # takes make them; then the run stops.
    tries = store_rows(tmp_path, "SELECT key FROM events WHERE event = 'take_not_sent'")
    assert len(tries) == 3, tries
    assert {s for (s,) in store_rows(tmp_path, "SELECT status FROM takes")} == {"new"}


async def test_the_quick_retries_are_counted_for_the_run_not_for_each_take(
        tmp_path: Path) -> None:
    # Per take, 12 queued takes had 3 tries each (36 refusals, each waiting its turn at the
    # creation pace): a wrong URL took longer to report the more takes a manifest had.
    path = manifest(tmp_path, 12)
    base = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run_cli(run_args(path, base, "--concurrency", "4", *PATIENT),
                                   timeout=HANG)
    assert code == 1
    one_line(out, err, f"cannot connect to the gateway at {base} (connection refused)")
    tries = store_rows(tmp_path, "SELECT key FROM events WHERE event = 'take_not_sent'")
    # Three refusals stop the run; at most the other 3 slots' attempts were under way then.
    assert 3 <= len(tries) <= 3 + 3, tries
    assert {s for (s,) in store_rows(tmp_path, "SELECT status FROM takes")} == {"new"}


async def test_a_web_server_that_is_not_the_gateway_is_named(tmp_path: Path) -> None:
    seen: list[str] = []

    async def not_implemented(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.Response(status=501, content_type="text/html",
                            text="<!DOCTYPE HTML>\n<html><body>Unsupported method</body></html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_implemented)
    server = await serve(app)
    try:
        path = manifest(tmp_path, 3)
        base = url_of(server)
        code, out, err = await run_cli(run_args(path, base, "--concurrency", "1", *PATIENT),
                                       timeout=HANG)
    finally:
        await server.close()
    assert code == 1
    one_line(out, err, f"stopped: {base}/v1/videos/generations answered HTTP 501 with an "
                       "HTML page: is api.base_url (or --base-url) the gateway?")
    assert seen == ["POST /v1/videos/generations"]  # not retried: waiting will not help
    assert {s for (s,) in store_rows(tmp_path, "SELECT status FROM takes")} == {"new"}


async def test_tasks_in_flight_are_kept_when_the_url_is_wrong_on_resume(tmp_path: Path) -> None:
    """A run resumed with a wrong URL only polls: it stops just as fast and keeps the paid
    tasks for the run after it, which collects them (nothing is submitted twice)."""
    async def always_pending(request: web.Request, body: bytes) -> web.StreamResponse | None:
        if request.method == "GET" and request.path.startswith("/v1/tasks/"):
            return web.json_response({"id": request.path.rsplit("/", 1)[1],
                                      "status": "pending", "progress": 5})
        return None

    path = manifest(tmp_path, 2)
    async with run_emulator(emulator()) as emu:
        front = await serve(relay(emu.base_url, always_pending))
        try:
            code, out, _ = await run_cli(run_args(path, url_of(front), "--task-timeout", "0.2"))
        finally:
            await front.close()
        assert code == 1 and "still at the gateway: 2" in out, out
        tasks = store_rows(tmp_path, "SELECT key, status, task_id FROM takes ORDER BY key")

        base = f"http://127.0.0.1:{free_port()}"
        code, out, err = await run_cli(
            run_args(path, base, "--retries", "0", *PATIENT), timeout=HANG)
        assert code == 1
        one_line(out, err, f"cannot connect to the gateway at {base} (connection refused)")
        assert "take_left_in_flight" not in err  # the summary says what was left, once
        assert store_rows(tmp_path, "SELECT key, status, task_id FROM takes ORDER BY key") \
            == tasks

        code, out, _ = await run_cli(run_args(path, emu.base_url))
        accepted = emu.stats()["accepted_tasks"]
    assert code == 0, out
    audit(tmp_path, 2)
    assert accepted == 2  # collected, never resubmitted
