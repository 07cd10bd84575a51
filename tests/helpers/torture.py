"""What every torture scenario shares: its scale, a manifest of N shots, the CLI, the final audit.

The manifest, the fast emulator, the waiting helpers and the decoding check come from
``tests/cli/commands/test_run.py`` (one piece of code for each); this module adds what the
scenarios need on top: a recognisable API key, ``shotrun run`` as a real subprocess, and
:func:`audit`, the single definition of "the job is finished and nothing is broken" that
every scenario ends with.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from runner.emulator import EmulatorSettings
from tests.helpers.run import FAST_FLAGS, decodes, fast_emulator, write_manifest

KEY = "sk-TORTURE-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
ACCESS_KEY = "AK-TORTURE-0a1b2c3d4e5f"  # Kling's access key (KEY is then its secret key)
#: Every provider's scenario is the same scenario: the emulator speaks its wire format.
PROVIDERS = ("gateway", "fal", "kling")


@dataclass(frozen=True)
class Scale:
    """How many takes and kills a scenario uses."""

    long: bool
    takes: int  # takes of the crash and chaos scenarios
    kills: int  # SIGKILLs of the crash scenario (at least)
    small: int  # takes of the other scenarios


SHORT = Scale(long=False, takes=10, kills=6, small=3)
LONG = Scale(long=True, takes=120, kills=40, small=12)


def emulator(**changes: Any) -> EmulatorSettings:
    """The fast cached-render emulator of the command tests, checking :data:`KEY`."""
    return fast_emulator(**{"api_key": KEY, **changes})


def shots(count: int, prefix: str = "s") -> str:
    """The ``shots:`` body of ``count`` one-take shots with distinct prompts."""
    return "".join(f"  - id: {prefix}{n:03}\n    prompt: \"torture shot {prefix} {n}\"\n"
                   for n in range(count))


def manifest(root: Path, count: int, *, api: str = "") -> Path:
    """A manifest of ``count`` shots rendered into ``root/out``."""
    return write_manifest(root, shots(count), api=api)


def store_path(root: Path) -> Path:
    return root / "out" / ".shotrun" / "state.sqlite"


def env() -> dict[str, str]:
    """The environment of a ``shotrun`` subprocess: the torture key, no stray overrides."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("SHOTRUN_BASE_URL", "SHOTRUN_FILES_URL", "SHOTRUN_PROVIDER")}
    return {**base, "SHOTRUN_API_KEY": KEY, "FAL_KEY": KEY, "KLING_SECRET_KEY": KEY,
            "KLING_ACCESS_KEY": ACCESS_KEY}


def run_args(manifest_path: Path, base_url: str, *extra: str) -> list[str]:
    """``python -m runner run MANIFEST --base-url URL`` with the fast timing flags."""
    return [sys.executable, "-m", "runner", "run", str(manifest_path), "--base-url", base_url,
            *FAST_FLAGS, *extra]


async def run_cli(args: list[str], *, preexec: Any = None,
                  timeout: float = 300.0) -> tuple[int, str, str]:
    """Run a ``shotrun`` subprocess to its end: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *args, env=env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"shotrun did not finish within {timeout} s (a hang)") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass(frozen=True)
class Audit:
    """What the store says after the job: per take status and hash, ambiguous submissions."""

    statuses: dict[str, str]
    ambiguous: int


def audit(root: Path, count: int) -> Audit:
    """Assert the job is finished and sound; return the store's figures.

    Every take done; every output decodes and hashes to the store's SHA-256; no ``.part``
    left anywhere; ``PRAGMA integrity_check`` is ok.
    """
    path = store_path(root)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT key, status, sha256 FROM takes").fetchall()
        ambiguous = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE outcome = 'ambiguous'").fetchone()[0]
    conn.close()
    return Audit(check_done(root, rows, count), int(ambiguous))


def check_done(root: Path, rows: Sequence[Sequence[Any]], count: int) -> dict[str, str]:
    """``rows`` (key, status, sha256) are ``count`` done takes whose videos under
    ``root/out`` decode and hash as recorded, with no ``.part`` left; their statuses."""
    statuses = {str(key): str(status) for key, status, _ in rows}
    assert len(rows) == count, f"{len(rows)} takes in the store, expected {count}"
    assert set(statuses.values()) == {"done"}, {k: s for k, s in statuses.items() if s != "done"}
    for key, _, sha in rows:
        video = root / "out" / f"{key}.mp4"
        assert hashlib.sha256(video.read_bytes()).hexdigest() == sha, key
        decodes(video)
    assert not list((root / "out").rglob("*.part"))
    return statuses


Hook = Callable[[web.Request, bytes], Awaitable[web.StreamResponse | None]]


def relay(upstream: str, hook: Hook | None = None,
          body_hook: Callable[[web.Request, bytes], Awaitable[bytes]] | None = None,
          ) -> web.Application:
    """A gateway in front of ``upstream`` (the emulator) that a scenario can misbehave in.

    ``hook(request, body)`` may answer instead of the emulator (or never return: a gateway
    that stops answering); ``body_hook`` may rewrite a JSON answer. Result URLs are rewritten
    to point back here, so downloads pass through too and are streamed (a scenario can stall
    one mid-way by returning a StreamResponse it never finishes).
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if hook is not None:
            answer = await hook(request, body)
            if answer is not None:
                return answer
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "range")}
        async with ClientSession(auto_decompress=False) as session, session.request(
                request.method, upstream + request.path_qs, data=body, headers=headers,
                allow_redirects=False) as resp:
            payload = await resp.read()
            if "json" in resp.content_type:
                payload = payload.replace(upstream.encode(), str(request.url.origin()).encode())
                if body_hook is not None:
                    payload = await body_hook(request, payload)
            kept = {k: v for k, v in resp.headers.items()
                    if k.lower() in ("content-range", "content-type", "retry-after")}
            return web.Response(status=resp.status, body=payload, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(app: web.Application) -> TestServer:
    """Start ``app`` on 127.0.0.1 (the caller closes it)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def finish(args: list[str], *, tries: int = 4) -> tuple[int, str, str]:
    """Run until all is done, with ``--retry-failed`` (the user's "resubmit held takes").

    A take whose creation answer was lost twice is held, never resubmitted in a loop; on a
    gateway that keeps resetting connections, the user's resubmission can be lost again.
    """
    result = (1, "", "")
    for _ in range(tries):
        result = await run_cli([*args, "--retry-failed"])
        if result[0] == 0:
            break
    return result
