"""Everything bounded (issue 21, part 5): downloads, quoted text, unreadable answers, the key
in a provider's URL, nonsense numbers.

Each scenario puts a misbehaving gateway (:func:`~tests.helpers.torture.relay`) in front of
the emulator, runs ``shotrun run`` as a subprocess, and ends with the money promises of
:mod:`tests.helpers.promises`: what the server created is one task per take plus what the store
counts as ambiguous; no line printed or stored is over 1,000 characters; the key is in no
file under the output folder.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from runner.emulator import run_emulator
from tests.helpers.promises import (
    assert_lines_bounded,
    assert_paid_once,
    assert_secret_absent,
    assert_store_bounded,
)
from tests.helpers.torture import (
    KEY,
    PROVIDERS,
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


@asynccontextmanager
async def misbehaving(hook: Any = None, body_hook: BodyHook | None = None,
                      settings: Any = None, provider: str = "gateway"
                      ) -> AsyncIterator[tuple[str, Any]]:
    """The emulator behind a relay: (the relay's URL, the emulator), for several runs."""
    async with run_emulator(settings or emulator(seed=11), provider=provider) as emu:
        front = await serve(relay(emu.base_url, hook, body_hook))
        try:
            yield url_of(front), emu
        finally:
            await front.close()


async def run_at(root: Path, takes: int, url: str, *flags: str) -> tuple[int, str, str]:
    """One ``shotrun run --json`` of ``takes`` shots at ``url``."""
    path = root / "shots.yaml"
    if not path.exists():
        manifest(root, takes)
    return await run_cli(run_args(path, url, "--json", *flags), timeout=120)


async def run_through(root: Path, takes: int, *, hook: Any = None,
                      body_hook: BodyHook | None = None, flags: tuple[str, ...] = (),
                      settings: Any = None, provider: str = "gateway"
                      ) -> tuple[int, str, str, int]:
    """One run through a fresh misbehaving gateway; (exit code, stdout, stderr, creations)."""
    async with misbehaving(hook, body_hook, settings, provider) as (url, emu):
        code, out, err = await run_at(root, takes, url, "--provider", provider, *flags)
        created = int(emu.stats()["accepted_tasks"])
    return code, out, err, created


def promises(root: Path, takes: int, created: int, *texts: str) -> None:
    """The shared checks every scenario ends with."""
    assert_paid_once(created, takes, store_path(root))
    assert_lines_bounded(*texts, *output_texts(root))
    assert_store_bounded(store_path(root))
    assert_secret_absent(root / "out", KEY)


def unreadable_creation(body: bytes) -> BodyHook:
    """A service whose 2xx answer to every creation cannot be read (the task was made).

    Every POST but an upload is a creation, whatever the provider's path for it."""
    async def rewrite(request: web.Request, payload: bytes) -> bytes:
        if request.method == "POST" and "upload" not in request.path:
            return body
        return payload

    return rewrite


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unreadable_2xx_creation_answer_is_ambiguous_and_never_paid_again(
        tmp_path: Path, provider: str) -> None:
    bodies = (b"<html><body>OK</body></html>", b"")
    for n, body in enumerate(bodies):
        root = tmp_path / f"case{n}"
        root.mkdir()
        code, out, err, created = await run_through(root, 2, provider=provider,
                                                    body_hook=unreadable_creation(body))
        summary = json.loads(out)
        if provider == "kling":
            # Looked up by its external_task_id: found and collected, never ambiguous.
            assert code == 0 and created == 2 and summary["ambiguous"] == 0, (out, err)
            audit(root, 2)
            promises(root, 2, created, out, err)
            continue
        assert code == 1 and summary["done"] == 0, (body, summary)
        # Accepted by the server: counted as ambiguous, never "nothing paid"; resubmitted
        # at most once (the --ambiguous policy), then held.
        assert summary["ambiguous"] == created >= 2, (body, summary, created)
        promises(root, 0, created, out, err)
        # The gateway mended: --retry-failed (which says it may pay twice) finishes the job,
        # and every creation the server made is one take's or counted as ambiguous.
        code, out, err, again = await run_through(root, 2, provider=provider,
                                                  flags=("--retry-failed",))
        assert code == 0, (out, err)
        audit(root, 2)
        promises(root, 2, created + again, out, err)


async def test_a_result_url_carrying_the_key_is_written_nowhere(tmp_path: Path) -> None:
    async def keyed(request: web.Request, payload: bytes) -> bytes:
        # A provider that puts the account's key in its result links (``?key=``), as some
        # storage services sign theirs: the link works only with it.
        return re.sub(rb'(/results/[^"?]+\?[^"]*)', rb"\1&key=" + KEY.encode(), payload)

    failing = [True]

    async def needs_key(request: web.Request, body: bytes) -> web.StreamResponse | None:
        if not request.path.startswith("/results/"):
            return None
        if request.query.get("key") != KEY:
            return web.Response(status=403, text="no key")
        return web.Response(status=503, text="busy") if failing[0] else None

    async with misbehaving(needs_key, keyed) as (url, emu):
        # The first run cannot download: the links are kept (redacted) for the next run.
        code, out, err = await run_at(tmp_path, 2, url)
        assert code == 1, (out, err)
        failing[0] = False
        # The next run's stored links lack the key: it asks the tasks for them again.
        code2, out2, err2 = await run_at(tmp_path, 2, url)
        created = int(emu.stats()["accepted_tasks"])
    assert code2 == 0, (out2, err2)
    audit(tmp_path, 2)
    promises(tmp_path, 2, created, out, err, out2, err2)


async def test_a_download_trickling_a_byte_at_a_time_is_cut_and_collected_later(
        tmp_path: Path) -> None:
    trickling = [True]
    trickled: list[str] = []
    origin: list[str] = []  # the emulator's URL, once it runs

    async def trickle(request: web.Request, body: bytes) -> web.StreamResponse | None:
        if not request.path.startswith("/results/") or not trickling[0]:
            return None
        trickled.append(request.path)
        upstream = origin[0] + request.path_qs
        headers = {k: v for k, v in request.headers.items() if k.lower() == "range"}
        async with ClientSession(auto_decompress=False) as session, \
                session.get(upstream, headers=headers) as resp:
            data = await resp.read()
            kept = {k: v for k, v in resp.headers.items()
                    if k.lower() in ("content-range", "content-type", "content-length")}
            status = resp.status
        answer = web.StreamResponse(status=status, headers=kept)
        await answer.prepare(request)
        for offset in range(len(data)):  # the real bytes, each after a pause: never silent
            await answer.write(data[offset:offset + 1])
            await asyncio.sleep(0.02)  # the server's own pace: the misbehaviour under test
        return answer

    flags = ("--read-timeout", "0.3", "--min-download-rate", "4K")
    async with misbehaving(trickle) as (url, emu):
        origin.append(emu.base_url)
        code, out, err = await run_at(tmp_path, 2, url, *flags)
        summary = json.loads(out)
        assert code == 1 and summary["done"] == 0, summary
        assert len(trickled) > 2  # retried by the same run, with backoff
        assert "minimum rate" in out and "link is kept" in out
        trickling[0] = False
        # The next run collects the same tasks (their links were kept): nothing paid again.
        code2, out2, err2 = await run_at(tmp_path, 2, url, *flags)
        created = int(emu.stats()["accepted_tasks"])
    assert code2 == 0, (out2, err2)
    assert created == 2
    audit(tmp_path, 2)
    promises(tmp_path, 2, created, out, err, out2, err2)


async def test_a_library_error_quoting_a_whole_body_is_cut_everywhere(tmp_path: Path) -> None:
    broken = [True]
    body = b"\x00moov" + b"x" * 60_000  # a video body where a chunk size belongs

    async def garbled(request: web.Request, _body: bytes) -> web.StreamResponse | None:
        if not request.path.startswith("/results/") or not broken[0]:
            return None
        # aiohttp's parser quotes what it choked on: here, 60 KB of it.
        transport = request.transport
        assert transport is not None
        transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"\r\n")
        transport.close()
        return web.Response()

    async with misbehaving(garbled) as (url, emu):
        code, out, err = await run_at(tmp_path, 2, url)
        summary = json.loads(out)
        assert code == 1 and summary["done"] == 0, summary
        assert "more characters)" in out  # quoted, and cut
        broken[0] = False
        code2, out2, err2 = await run_at(tmp_path, 2, url)
        created = int(emu.stats()["accepted_tasks"])
    assert code2 == 0, (out2, err2)
    audit(tmp_path, 2)
    promises(tmp_path, 2, created, out, err, out2, err2)


async def test_nonsense_credits_are_unknown_with_a_warning_and_figures_stay_sane(
        tmp_path: Path) -> None:
    for n, nonsense in enumerate((b"1e308", b"-16.2", b"NaN")):
        root = tmp_path / f"case{n}"
        root.mkdir()

        async def absurd(request: web.Request, payload: bytes,
                         nonsense: bytes = nonsense) -> bytes:
            return re.sub(rb'"credits_reserved": *[-0-9.eE+]+', b'"credits_reserved": ' +
                          nonsense, payload)

        code, out, err, created = await run_through(root, 2, body_hook=absurd)
        assert code == 0, (out, err)
        summary = json.loads(out)
        assert "provider_number_unreadable" in err and "usage.credits_reserved" in err
        # Unknown, so the estimate stands in: a sane figure, no "inf", no 309 digits.
        assert 0 < summary["credits"]["run"] < 1000, summary["credits"]
        assert "inf" not in json.dumps(summary["credits"]).lower()
        assert not re.search(r"\d{20}", out + err)
        audit(root, 2)
        promises(root, 2, created, out, err)


async def test_nonsense_download_bounds_are_one_located_line_and_nothing_happens(
        tmp_path: Path) -> None:
    sent: list[str] = []

    async def counting(request: web.Request) -> web.StreamResponse:
        sent.append(request.path)
        return web.Response(status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counting)
    server = await serve(app)
    cases: list[tuple[tuple[str, ...], str, str]] = [
        (("--download-timeout", "0"), "", "--download-timeout"),
        (("--download-timeout", "soon"), "", "--download-timeout"),
        (("--download-timeout", "inf"), "", "--download-timeout"),
        (("--min-download-rate", "-1"), "", "--min-download-rate"),
        (("--min-download-rate", "fast"), "", "--min-download-rate"),
        ((), "  download_timeout: -5\n", "shots.yaml:7:"),
        ((), "  min_download_rate: lots\n", "shots.yaml:7:"),
    ]
    try:
        for n, (flags, setting, where) in enumerate(cases):
            root = tmp_path / f"case{n}"
            root.mkdir()
            path = manifest(root, 1)
            if setting:  # under api:, after base_url and submit_rate
                text = path.read_text().replace("  submit_rate: 50\n",
                                                "  submit_rate: 50\n" + setting)
                path.write_text(text)
            code, out, err = await run_cli(run_args(path, url_of(server), *flags))
            lines = [line for line in err.splitlines() if line.strip()]
            assert code == 2, (flags, setting, out, err)
            assert len(lines) == 1 and where in lines[0], (flags, setting, err)
            assert not (root / "out").exists()
    finally:
        await server.close()
    assert sent == []
