"""A finished run on the built-in emulator, a review server on loopback, raw HTTP to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from runner import cli
from runner.manifest import load_manifest
from runner.state import store_path_for
from runner.views.review.server import ReviewServer
from tests.helpers.run import FAST_FLAGS

# s02 starts from s01's last frame: picking the other take of s01 makes s02 stale.
CHAIN = """\
  - id: s01-walk
    prompt: "A woman in a red coat walks along the beach <script>window.__pwned = 1</script>"
    takes: 2
    tags: [act1]
  - id: s02-turn
    prompt: "She turns toward the lighthouse"
    start_frame: {from_shot: s01-walk, frame: last}
    tags: [act2]
  - id: s03-credits
    prompt: "Slow pan across the empty beach at dusk"
    after: [s02-turn]
"""


RAW_DEADLINE = 60.0


def write_manifest(root: Path, shots: str = CHAIN, *, processing: float = 0.03) -> Path:
    path = root / "shots.yaml"
    path.write_text(
        "version: 1\nname: review-demo\noutput_dir: out\n"
        "api:\n  base_url: emulator\n  concurrency: 4\n"
        f"  emulator: {{queue_time: 0.01, processing_time: {processing}, render: full}}\n"
        "defaults: {resolution: 720p, duration: 3}\n"
        f"shots:\n{shots}",
        encoding="utf-8",
    )
    return path


def run_manifest(manifest: Path) -> None:
    assert cli.main(["-q", "run", str(manifest), *FAST_FLAGS]) == 0


async def finished_run(root: Path) -> tuple[Path, Path]:
    """The chain manifest, run to the end (in a thread: the run has its own event loop),
    and its store's path."""
    manifest = write_manifest(root)
    await asyncio.to_thread(run_manifest, manifest)
    return manifest, store_path_for(root / "out")


@asynccontextmanager
async def serving(manifest: Path, *, interval: float = 0.05) -> AsyncIterator[ReviewServer]:
    """A review server of ``manifest`` on 127.0.0.1, any free port."""
    server = ReviewServer(load_manifest(manifest), interval=interval)
    await server.start(0)
    try:
        yield server
    finally:
        await server.stop()


async def raw(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (the request line and headers, one a line, as written on the wire) and
    ``body``, and read the answer: no client library normalizes the path on the way."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [line for line in head.split("\n") if line]
    try:
        # A deadline, not a wait: a server that never closes the connection fails the test
        # with the request named, instead of hanging the suite (seen once under load).
        async with asyncio.timeout(RAW_DEADLINE):
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            data = await reader.read()
    except TimeoutError:
        raise AssertionError(f"no complete answer to {lines[0]!r} in {RAW_DEADLINE:g} s"
                             ) from None
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


async def get(server: ReviewServer, path: str, *, token: bool = True,
              headers: str = "") -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` (as written) with the token in the query unless ``token`` is False."""
    if token:
        path += ("&" if "?" in path else "?") + f"token={server.token}"
    return await raw(server.port, f"GET {path} HTTP/1.1\nHost: 127.0.0.1:{server.port}\n"
                     f"Connection: close\n{headers}")


async def post(server: ReviewServer, path: str, body: dict[str, Any], *,
               token: str | None = None, headers: str = "") -> tuple[int, dict[str, Any]]:
    """POST JSON with the token header (``token``: another one; "" for none)."""
    data = json.dumps(body, ensure_ascii=False)
    given = server.token if token is None else token
    token_line = f"X-Shotrun-Token: {given}\n" if given else ""
    status, _, answer = await raw(
        server.port, f"POST {path} HTTP/1.1\nHost: 127.0.0.1:{server.port}\n"
        f"Connection: close\nContent-Type: application/json\nContent-Length: {len(data.encode())}\n"
        f"{token_line}{headers}", data.encode())
    try:
        parsed: dict[str, Any] = json.loads(answer)
    except ValueError:
        parsed = {"text": answer.decode("utf-8", "replace")}
    return status, parsed


async def update_where(server: ReviewServer, holds: Any, timeout: float = 30) -> dict[str, Any]:
    """The first update of the event stream for which ``holds(update)`` is true.

    Asks with ``since=0``, so the first update is the whole current page: a state reached
    before the stream was opened counts. Waits on the stream's events, never on a timer.
    """
    async with asyncio.timeout(timeout), ClientSession() as session, session.get(
            f"http://127.0.0.1:{server.port}/events",
            params={"token": server.token, "since": "0"}) as response:
        assert response.status == 200
        async for raw_line in response.content:
            line = raw_line.decode().rstrip("\n")
            if line.startswith("data: "):
                update: dict[str, Any] = json.loads(line[len("data: "):])
                if holds(update):
                    return update
    raise AssertionError("the event stream ended")


def status_json(manifest: Path, capsys: Any) -> dict[str, dict[str, Any]]:
    """``shotrun status --json``'s take records, by id."""
    capsys.readouterr()
    assert cli.main(["status", str(manifest), "--json"]) == 0
    return {row["id"]: row for row in json.loads(capsys.readouterr().out)["takes"]}


def plan_json(manifest: Path, capsys: Any) -> dict[str, dict[str, Any]]:
    """``shotrun plan --json``'s status per take key."""
    capsys.readouterr()
    assert cli.main(["plan", str(manifest), "--json"]) == 0
    return {row["key"]: row["status"] for row in json.loads(capsys.readouterr().out)["takes"]}
