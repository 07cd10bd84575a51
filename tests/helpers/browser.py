"""Headless Chromium driven over the DevTools protocol on a pipe (no port, no network).

``--remote-debugging-pipe`` makes Chromium read protocol messages from fd 3 and write them to
fd 4, each a JSON text ended by a NUL byte. Everything here waits on those messages with a
deadline; nothing sleeps.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The Debian ``chromium`` binary, if installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A minimal DevTools client: ``call`` a method, ``wait_event`` for an event."""

    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int
                 ) -> None:
        self.proc = proc
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 16)
                if not chunk:
                    raise ConnectionError(f"chromium exited ({self.proc.poll()})")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_event(self, method: str, *, timeout: float = 30) -> dict[str, Any]:
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("method") == method:
                return message
            self.events.append(message)


@contextmanager
def chromium(binary: str, profile: Path) -> Iterator[DevTools]:
    """A headless Chromium with its DevTools protocol on a pipe; closed on exit."""
    to_read, to_write = os.pipe()  # browser reads fd 3 = to_read
    from_read, from_write = os.pipe()  # browser writes fd 4 = from_write

    def wire_fds() -> None:
        # Move both ends out of the way first, so that placing one cannot clobber the other.
        high_read = fcntl.fcntl(to_read, fcntl.F_DUPFD, 10)
        high_write = fcntl.fcntl(from_write, fcntl.F_DUPFD, 10)
        os.dup2(high_read, 3)  # dup2 clears close-on-exec: the browser inherits 3 and 4
        os.dup2(high_write, 4)

    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
         "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=wire_fds, close_fds=False,  # Python's own fds are close-on-exec anyway
    )
    os.close(to_read)
    os.close(from_write)
    tools = DevTools(proc, to_write, from_read)
    try:
        yield tools
    finally:
        with suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
            tools.call("Browser.close", timeout=10)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_write)
        os.close(from_read)


def open_page(tools: DevTools, url: str, *, before_load: str = "") -> str:
    """Open ``url`` in a new tab and wait for its load event; returns the session id."""
    target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})
    session_id: str = session["sessionId"]
    tools.call("Page.enable", session=session_id)
    tools.call("Runtime.enable", session=session_id)
    if before_load:
        tools.call("Page.addScriptToEvaluateOnNewDocument", {"source": before_load},
                   session=session_id)
    tools.call("Page.navigate", {"url": url}, session=session_id)
    tools.wait_event("Page.loadEventFired")
    return session_id


def evaluate(tools: DevTools, session: str, expression: str) -> Any:
    """The JSON value of ``expression`` (awaited when it is a promise) in the page."""
    reply = tools.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                            "returnByValue": True}, session=session)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
    return reply["result"].get("value")
