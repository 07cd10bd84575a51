"""The review page in real headless Chromium (Debian's ``chromium``), against the real server.

A run of the emulator goes on in its own process while the page watches: takes appear, a
click picks one (kept while the run holds the store, saved when it ends), and the chain it
changes is shown as ``plan`` says it. The keyboard: next shot, next take, play, pick, note.
Skipped, with the reason, where no Chromium is installed (``.ci/run`` installs it).

``SHOTRUN_PICTURES=1`` also writes the README's ``docs/review.png`` from the live-run test.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from runner.state import store_path_for
from tests.helpers.browser import chromium, find_chromium
from tests.helpers.review import (
    FAST_FLAGS,
    plan_json,
    run_manifest,
    serving,
    status_json,
    write_manifest,
)
from tests.helpers.review_driver import ReviewPage

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
DOCS = Path(__file__).resolve().parents[3] / "docs"

# Tiles that say what the next run does with them: key -> [plan's state, plan's reason].
NEXT = """Object.fromEntries(Array.from(document.querySelectorAll('.next')).map(function (n) {
  return [n.closest('article.tile').getAttribute('data-key'),
          {state: n.getAttribute('data-next'), reason: n.getAttribute('data-reason')}];
}))"""


def _save_picture(png: bytes, tmp_path: Path) -> None:
    (tmp_path / "review.png").write_bytes(png)
    if os.environ.get("SHOTRUN_PICTURES"):
        with Image.open(io.BytesIO(png)) as image:
            small = image.convert("RGB").resize((1024, 1120), Image.Resampling.LANCZOS)
            small.save(DOCS / "review.png", optimize=True)


async def test_takes_appear_live_a_click_picks_and_the_chain_is_what_plan_shows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert CHROMIUM is not None
    manifest = write_manifest(tmp_path, processing=2.5)
    async with serving(manifest, interval=0.1) as server:
        with chromium(CHROMIUM, tmp_path / "profile") as tools:
            page = await asyncio.to_thread(ReviewPage, tools, server.url, height=1400)
            before = await asyncio.to_thread(page.statuses)
            assert before == {"s01-walk/take-1": "new", "s01-walk/take-2": "new",
                              "s02-turn/take-1": "new", "s03-credits/take-1": "new"}
            # A run in its own process, holding the store; the page was loaded before it.
            run = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "runner", "-q", "run", str(manifest), *FAST_FLAGS,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                # In flight first, then done: the page moves with the run, with no reload.
                await asyncio.to_thread(page.until, "document.querySelector("
                                        "'article.tile[data-status=submitted]')")
                chosen = await asyncio.to_thread(page.until, """(function () {
                  var done = document.querySelectorAll(
                    '#shot-s01-walk article.tile[data-status=done]');
                  var chosen = document.querySelector('#shot-s01-walk article.tile.chosen');
                  return done.length === 2 && chosen && chosen.getAttribute('data-key');
                })()""")
                assert run.returncode is None  # s02 and s03 are still to render
                other = 3 - int(chosen[-1])
                await asyncio.to_thread(page.click, f'button.pick[data-take="{other}"]')
                said = await asyncio.to_thread(page.until, "document.getElementById('message')"
                                               ".className === 'queued' && "
                                               "document.getElementById('message').textContent")
                assert said == (f"a run is in progress (pid {run.pid}): the pick s01-walk "
                                f"take {other} is saved when it ends")
                banner = await asyncio.to_thread(
                    page.until, "document.querySelector('.banner.run') && "
                    "document.querySelector('.banner.run').textContent")
                assert f"(pid {run.pid})" in banner
                assert await asyncio.to_thread(page.js, NEXT) == {}  # nothing saved yet
            finally:
                _, err = await run.communicate()
            assert run.returncode == 0, err
            # The run let the store go: the pick is saved, and the chain it changed shows.
            shown = await asyncio.to_thread(page.until, f"""(function () {{
              var mark = document.querySelector(
                '#shot-s01-walk article.tile[data-key="s01-walk/take-{other}"] .picked-mark');
              return mark && !document.querySelector('.banner') && ({NEXT});
            }})()""")
            # A note, typed and saved through the page.
            box = f'textarea[data-key="s01-walk/take-{other}"]'
            await asyncio.to_thread(page.click, box)
            await asyncio.to_thread(page.type_text, "warmer light; <b>keep</b>")
            save = f'button.save-note[data-key="s01-walk/take-{other}"]'
            await asyncio.to_thread(page.click, save)
            await asyncio.to_thread(page.until, "document.getElementById('message').textContent"
                                    f" === 'note saved on s01-walk/take-{other}'")
            checks = await asyncio.to_thread(page.js, """({
              pwned: typeof window.__pwned, scripts: document.scripts.length,
              violations: window.__violations,
              prompt: document.querySelector('#shot-s01-walk .prompt').textContent})""")
            _save_picture(await asyncio.to_thread(page.screenshot), tmp_path)
    rows = status_json(manifest, capsys)
    assert rows[f"s01-walk/take-{other}"]["picked"]
    assert rows[f"s01-walk/take-{other}"]["note"] == "warmer light; <b>keep</b>"
    planned = plan_json(manifest, capsys)
    again = {key: status for key, status in planned.items()
             if status["state"] in ("will run", "will retry") and rows[key]["status"] == "done"}
    assert shown == again == {"s02-turn/take-1": {"state": "will run",
                                                  "reason": "source changed"}}
    # The prompt's <script> is text on the page (the two scripts are the server's); it never
    # ran, and nothing was blocked because nothing tried.
    assert checks["pwned"] == "undefined" and checks["scripts"] == 2
    assert checks["violations"] == []
    assert "<script>window.__pwned = 1</script>" in checks["prompt"]


async def test_the_keyboard_moves_plays_picks_and_notes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert CHROMIUM is not None
    manifest = write_manifest(tmp_path)
    await asyncio.to_thread(run_manifest, manifest)
    assert store_path_for(tmp_path / "out").is_file()
    async with serving(manifest) as server:
        with chromium(CHROMIUM, tmp_path / "profile") as tools:
            page = await asyncio.to_thread(ReviewPage, tools, server.url)
            current = "document.querySelector('article.tile.current') && " \
                      "document.querySelector('article.tile.current').getAttribute('data-key')"
            await asyncio.to_thread(page.key, "j")
            assert await asyncio.to_thread(page.until, current) == "s01-walk/take-1"
            await asyncio.to_thread(page.key, "l")
            assert await asyncio.to_thread(page.until, current) == "s01-walk/take-2"
            # Space plays the current take: wait for the video's own "playing" event.
            await asyncio.to_thread(page.js, """(window.__played = new Promise(function (ok) {
              var v = document.querySelector('article.tile.current video');
              v.addEventListener('playing', function () { ok(true); }, {once: true});
              v.addEventListener('error', function () { ok('error'); }, {once: true});
            }), true)""")
            await asyncio.to_thread(page.key, " ")
            assert await asyncio.to_thread(page.js, "window.__played") is True
            await asyncio.to_thread(page.key, " ")
            assert await asyncio.to_thread(page.until, "document.querySelector("
                                           "'article.tile.current video').paused") is True
            await asyncio.to_thread(page.key, "2")  # pick take 2 of the current shot
            await asyncio.to_thread(page.until, "document.getElementById('message')"
                                    ".textContent === 'picked s01-walk take 2'")
            await asyncio.to_thread(page.until, "document.querySelector("
                                    "'[data-key=\"s01-walk/take-2\"] .picked-mark')")
            await asyncio.to_thread(page.key, "n")
            await asyncio.to_thread(page.type_text, "the one")
            await asyncio.to_thread(page.key, "Enter", ctrl=True)
            await asyncio.to_thread(page.until, "document.getElementById('message')"
                                    ".textContent === 'note saved on s01-walk/take-2'")
            await asyncio.to_thread(page.key, "j")  # saved and left the box: j moves on
            assert await asyncio.to_thread(page.until, current) == "s02-turn/take-1"
    rows = status_json(manifest, capsys)
    assert rows["s01-walk/take-2"]["picked"] and rows["s01-walk/take-2"]["note"] == "the one"
