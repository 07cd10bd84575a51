"""Everything bounded (issue 21, part 5): downloads, quoted text, unreadable answers, the key
in a provider's URL, nonsense numbers.

Each scenario puts a misbehaving gateway (:func:`~tests.torture.harness.relay`) in front of
the emulator, runs ``shotrun run`` as a subprocess, and ends with the money promises of
:mod:`tests.promises`: what the server created is one task per take plus what the store
counts as ambiguous; no line printed or stored is over 1,000 characters; the key is in no
file under the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from aiohttp import web

from runner.emulator import run_emulator
from tests.promises import (
    assert_lines_bounded,
    assert_paid_once,
    assert_secret_absent,
    assert_store_bounded,
)
from tests.torture.harness import (
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

CREATE = "/v1/videos/generations"
BodyHook = Callable[[web.Request, bytes], Awaitable[bytes]]


class _Shown(HTMLParser):
    """The texts a page shows (not its markup, styles or scripts, written on long lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("script", "style")
        self.texts.extend(value for name, value in attrs if value and name == "title")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.texts.append(data)


def output_texts(root: Path) -> list[str]:
    """What the output folder tells a user or a tool: the log, sidecars, the report's text."""
    texts: list[str] = []
    for path in (root / "out").rglob("*"):
        if not path.is_file() or path.suffix not in (".log", ".html", ".json", ".txt"):
            continue
        text = path.read_text("utf-8", "replace")
        if path.suffix == ".html":
            page = _Shown()
            page.feed(text)
            texts.extend(page.texts)
        else:
            texts.append(text)
    return texts


async def run_through(root: Path, takes: int, *, hook: Any = None,
                      body_hook: BodyHook | None = None, flags: tuple[str, ...] = (),
                      settings: Any = None) -> tuple[int, str, str, int]:
    """One ``shotrun run --json`` through a relay; (exit code, stdout, stderr, creations)."""
    path = manifest(root, takes) if not (root / "shots.yaml").exists() else root / "shots.yaml"
    async with run_emulator(settings or emulator(seed=11)) as emu:
        front = await serve(relay(emu.base_url, hook, body_hook))
        try:
            code, out, err = await run_cli(run_args(path, url_of(front), "--json", *flags),
                                           timeout=120)
        finally:
            await front.close()
        created = int(emu.stats()["accepted_tasks"])
    return code, out, err, created


def promises(root: Path, takes: int, created: int, *texts: str) -> None:
    """The shared checks every scenario ends with."""
    assert_paid_once(created, takes, store_path(root))
    assert_lines_bounded(*texts, *output_texts(root))
    assert_store_bounded(store_path(root))
    assert_secret_absent(root / "out", KEY)


def unreadable_creation(body: bytes) -> BodyHook:
    """A gateway whose 2xx answer to every creation cannot be read (the task was made)."""
    async def rewrite(request: web.Request, payload: bytes) -> bytes:
        if request.method == "POST" and request.path == CREATE:
            return body
        return payload

    return rewrite


async def test_an_unreadable_2xx_creation_answer_is_ambiguous_and_never_paid_again(
        tmp_path: Path) -> None:
    bodies = (b"<html><body>OK</body></html>", b"")
    for n, body in enumerate(bodies):
        root = tmp_path / f"case{n}"
        root.mkdir()
        code, out, err, created = await run_through(root, 2,
                                                    body_hook=unreadable_creation(body))
        summary = json.loads(out)
        assert code == 1 and summary["done"] == 0, (body, summary)
        # Accepted by the server: counted as ambiguous, never "nothing paid"; resubmitted
        # at most once (the --ambiguous policy), then held.
        assert summary["ambiguous"] == created >= 2, (body, summary, created)
        assert "may have been billed" in out + err or summary["held"], (body, out)
        promises(root, 0, created, out, err)
        # The gateway mended: the next runs finish the job (a take held after two unreadable
        # answers waits for --retry-failed, which says it may pay twice), and every creation
        # the server made is one take's or counted as ambiguous.
        code, out, err, again = await run_through(root, 2, flags=("--retry-failed",))
        assert code == 0, (out, err)
        audit(root, 2)
        promises(root, 2, created + again, out, err)
