"""The review server: an aiohttp app on 127.0.0.1 serving one manifest's live contact sheet.

Routes (every one but ``GET /favicon.ico`` needs the token, in the query ``?token=`` or the
``X-Shotrun-Token`` header; compared with :func:`hmac.compare_digest`; a request without it
gets 403):

- ``GET /`` the page; ``GET /static/review.js``, ``/static/report.js`` (the report's filters)
  and ``/static/review.css``, its scripts and style;
- ``GET /files/PATH`` a video or poster of the output folder (resolved, symlinks followed,
  and refused unless it lands inside the output folder: a video anywhere in it, a poster in
  ``.shotrun/posters/``; never the store, the logs or anything else);
- ``GET /events?since=V`` server-sent events: ``update`` with the live header and the
  sections that changed (all of them when the page's version ``V`` is not the current one);
- ``GET /api/state`` the current snapshot's figures as JSON (for scripts);
- ``POST /api/pick {"shot", "take"}``, ``POST /api/note {"key", "text"}``: JSON in, JSON out
  (``state``: ``saved``, ``queued`` while a run holds the store, or ``error``; ``message``).

Safety beyond the token: the ``Host`` header must name the loopback address the server
listens on (a DNS-rebinding page cannot use it), a POST from another origin is refused, every
answer carries a Content-Security-Policy that allows only the server's own script, style and
media, and no referrer; the API key is registered with :mod:`runner.core.redact` and every text
answer is redacted on its way out.

The server learns about the store's changes by reading its stamp (``StateStore.stamp``, a few
ms) every ``interval`` seconds and at once after its own writes; a change rebuilds the page's
state in a worker thread (:func:`runner.views.review.page.build`) and sends what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from runner.core.errors import ShotrunError, StateError, UsageError
from runner.core.model import Manifest
from runner.core.redact import redact
from runner.state import StateStore
from runner.state.choices import check_note, check_pick, require_rendered
from runner.state.location import store_at
from runner.views.review.page import Situation, Snapshot, page_html, safe_build
from runner.views.review.pending import Pending, Wish
from runner.views.review.static import CSS, FILTERS_JS, JS
from runner.wire.specs import register_environment_secrets

log = structlog.get_logger()

HOST = "127.0.0.1"
TOKEN_HEADER = "X-Shotrun-Token"
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".webm"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
KEEPALIVE = 15.0  # seconds between comments on an idle event stream
# Browsers ask for /favicon.ico on every page load, without the token (they never send a
# page's query string along). Answered openly, with no warning: a refusal logged
# "review_refused why=token" on every load, which read like an attack. It reveals nothing.
FAVICON_PATH = "/favicon.ico"
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#1f2937"/>'
    '<path d="M6 4.5v7l5.5-3.5z" fill="#f9fafb"/></svg>'
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A random token for the URL: 32 characters of [A-Za-z0-9_-]."""
    return secrets.token_urlsafe(24)


class Refused(Exception):
    """A file review will not serve: outside the output folder, or not a video or poster."""


def resolve_inside(output_dir: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``output_dir``; None when there is no such file.

    Resolved with symlinks followed, so a link pointing out of the folder is refused like
    ``../`` (:class:`Refused`); only videos, and posters under ``.shotrun/posters/``, are
    served (the store, the logs and the rest are :class:`Refused` too).
    """
    root = output_dir.resolve()
    if "\0" in relative:
        raise Refused(relative)
    try:
        target = (root / relative).resolve(strict=True)
    except FileNotFoundError:
        if not (root / relative).resolve().is_relative_to(root):
            raise Refused(relative) from None
        return None
    except (OSError, RuntimeError):  # a loop of links, a name too long
        raise Refused(relative) from None
    if not target.is_relative_to(root) or not target.is_file():
        raise Refused(relative)
    inside = target.relative_to(root).parts
    if inside[0] == ".shotrun":
        if inside[:2] == (".shotrun", "posters") and target.suffix == ".jpg":
            return target
        raise Refused(relative)
    if target.suffix.lower() not in VIDEO_SUFFIXES:
        raise Refused(relative)
    return target


class ReviewServer:
    """One manifest's review app, its watcher and the picks and notes waiting for a run."""

    def __init__(self, manifest: Manifest, *, token: str | None = None,
                 interval: float = 0.5) -> None:
        self.manifest = manifest
        self.token = token or new_token()
        self.interval = interval
        self.pending = Pending()
        self.store = store_at(manifest)  # where it is, decided once: file or database
        self.snapshot: Snapshot | None = None
        self.version = 0
        self.port = 0
        self._state_key: tuple[Any, ...] | None = None
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._poke = asyncio.Event()
        self._closing = False  # stop() was called: the watcher ends at its next turn
        self._write_lock = asyncio.Lock()
        self._stamp_reader: StateStore | None = None  # a team's database, kept open
        self._runner: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None
        register_environment_secrets(manifest)  # never on the page
        self.app = self._make_app()

    # ------------------------------------------------------------------ life cycle
    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.token}"

    async def start(self, port: int = 0) -> str:
        """Build the first snapshot, listen on 127.0.0.1:``port`` (0: any free port).

        A team's database is opened once first: one that cannot be (unreachable, a refused
        password) is a :class:`StateError` here, not a page that never fills."""
        if self.store.shared:
            await asyncio.to_thread(lambda: self.store.open_reader().close())
        await self.refresh(force=True)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise UsageError(f"--port {port}: cannot listen on {HOST}:{port}: "
                             f"{exc.strerror or exc}") from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._watcher = asyncio.create_task(self._watch())
        log.info("review_started", port=self.port)
        return self.url

    async def stop(self) -> None:
        """End the event streams and the watcher, close the server, try a last save."""
        self._closing = True
        self._poke.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for queue in list(self._clients):
            queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._flush_if_free()
        await asyncio.to_thread(self._drop_stamp_reader)
        log.info("review_stopped", waiting=len(self.pending.wishes()))

    # ------------------------------------------------------------------ state
    def _situation(self) -> Situation:
        return Situation(self.store.run_pid() if self.store.exists() else None,
                         self.pending.wishes(), list(self.pending.failed))

    def _read_key(self) -> tuple[Any, ...]:
        """What, when it changes, means the page must be rebuilt (cheap: the store's stamp)."""
        stamp: str | None = None
        if self.store.exists():
            try:
                stamp = self._stamp()
            except StateError:
                stamp = "unreadable"
        return (stamp, self.store.run_pid(), self.pending.version)

    def _stamp(self) -> str:
        """The store's stamp, asked twice a second. The file is opened each time (a reader
        holds nothing there); a team's database is asked on one connection kept for it (a
        new connection is a new server process: twice a second per page adds up), dropped
        when it fails and opened again at the next turn."""
        if not self.store.shared:
            with self.store.open_reader() as store:
                return store.stamp()
        if self._stamp_reader is None:
            self._stamp_reader = self.store.open_reader()
        try:
            return self._stamp_reader.stamp()
        except StateError:
            self._drop_stamp_reader()
            raise

    def _drop_stamp_reader(self) -> None:
        reader, self._stamp_reader = self._stamp_reader, None
        if reader is not None:
            with contextlib.suppress(StateError):
                reader.close()

    async def refresh(self, *, force: bool = False) -> None:
        """Rebuild the snapshot if the store (or review's own state) changed; send changes."""
        key = await asyncio.to_thread(self._read_key)
        if key == self._state_key and not force and self.snapshot is not None:
            return
        self._state_key = key
        situation = self._situation()
        built = await asyncio.to_thread(safe_build, self.manifest, self.token, situation,
                                        self.snapshot)
        if built is None or (self.snapshot is not None
                             and built.digest == self.snapshot.digest):
            return
        before, self.snapshot = self.snapshot, built
        self.version += 1
        if before is not None:
            changed = {shot: html for shot, html in built.sections.items()
                       if before.sections.get(shot) != html}
            self._broadcast(self._event(built, changed))

    def _event(self, snapshot: Snapshot, sections: dict[str, str]) -> bytes:
        data = {"version": self.version, "live": snapshot.live, "sections": sections}
        text = redact(json.dumps(data, ensure_ascii=False))
        return f"event: update\ndata: {text}\n\n".encode()

    def _broadcast(self, message: bytes) -> None:
        for queue in self._clients:
            queue.put_nowait(message)

    async def _flush_if_free(self) -> None:
        if self.pending.wishes() and self.store.run_pid() is None:
            async with self._write_lock:
                await asyncio.to_thread(self.pending.flush, self.manifest)

    async def _watch(self) -> None:
        failing: str | None = None  # the last failure's words: said once, not twice a second
        # It ends on `_closing` as well as on cancel: Python 3.11's wait_for could swallow a
        # cancel that came as its wait ended (seen: `review` not stopping on Ctrl-C under
        # load), and asyncio.timeout below does not, but a flag cannot be lost at all.
        while not self._closing:
            try:
                await self._flush_if_free()
                await self.refresh()
            except Exception as exc:  # a watcher that dies leaves a page that never moves
                words = f"{type(exc).__name__}: {exc}"
                if words != failing:
                    log.error("review_watch_failed", error=words)
                failing = words
            else:
                if failing is not None:
                    log.info("review_watch_recovered")
                failing = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._poke.wait()
            self._poke.clear()

    # ------------------------------------------------------------------ the app
    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get(FAVICON_PATH, self._favicon)
        app.router.add_get("/static/review.js", self._script)
        app.router.add_get("/static/report.js", self._filters)
        app.router.add_get("/static/review.css", self._style)
        app.router.add_get("/files/{path:.+}", self._file)
        app.router.add_get("/events", self._events)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/pick", self._pick)
        app.router.add_post("/api/note", self._note)
        app.on_response_prepare.append(self._headers)
        return app

    def _allowed_hosts(self) -> set[str]:
        return {f"{HOST}:{self.port}", f"localhost:{self.port}"}

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.host not in self._allowed_hosts():
            log.warning("review_refused", why="host", host=request.host)
            return web.Response(status=403, text="shotrun review: forbidden: unknown host\n")
        if request.method == "GET" and request.path == FAVICON_PATH:
            return await handler(request)  # public and harmless: see FAVICON_PATH
        given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            log.warning("review_refused", why="token", path=request.path)
            return web.Response(status=403, text="shotrun review: forbidden: this address "
                                "needs the token that `shotrun review` printed\n")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin not in {f"http://{h}" for h in
                                                     self._allowed_hosts()}:
                log.warning("review_refused", why="origin", origin=origin)
                return web.Response(status=403, text="shotrun review: forbidden: another "
                                    "origin\n")
        return await handler(request)

    async def _headers(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")

    def _current(self) -> Snapshot:
        if self.snapshot is None:  # start() builds one before listening
            raise web.HTTPServiceUnavailable(text="shotrun review: starting\n")
        return self.snapshot

    async def _page(self, _request: web.Request) -> web.Response:
        html = page_html(self.manifest, self._current(), self.version, self.token)
        return web.Response(text=redact(html), content_type="text/html")

    async def _favicon(self, _request: web.Request) -> web.Response:
        return web.Response(text=FAVICON_SVG, content_type="image/svg+xml",
                            headers={"Cache-Control": "max-age=86400"})

    async def _script(self, _request: web.Request) -> web.Response:
        return web.Response(text=JS, content_type="application/javascript")

    async def _filters(self, _request: web.Request) -> web.Response:
        return web.Response(text=FILTERS_JS, content_type="application/javascript")

    async def _style(self, _request: web.Request) -> web.Response:
        return web.Response(text=CSS + self._current().thumbs_css, content_type="text/css")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        try:
            target = await asyncio.to_thread(resolve_inside, self.manifest.output_dir,
                                             relative)
        except Refused:
            log.warning("review_refused", why="path", path=relative)
            return web.Response(status=403, text="shotrun review: forbidden: only the videos "
                                "and posters of the output folder are served\n")
        if target is None:
            return web.Response(status=404, text="shotrun review: no such file in the output "
                                "folder\n")
        response = web.FileResponse(target)
        response.headers["Cache-Control"] = "private, max-age=60"
        return response

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._clients.add(queue)  # before looking at the snapshot: no change falls between
        try:
            snapshot = self._current()
            if request.query.get("since") != str(self.version):
                await response.write(self._event(snapshot, dict(snapshot.sections)))
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        message = await queue.get()
                except TimeoutError:
                    message = b": still here\n\n"
                if message is None:
                    break
                await response.write(message)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return response

    async def _state(self, _request: web.Request) -> web.Response:
        snapshot = self._current()
        situation = self._situation()
        data = {
            "version": self.version,
            "running_pid": situation.running_pid,
            "waiting": [wish.describe() for wish in situation.waiting],
            "not_saved": [{"what": f.wish.describe(), "why": f.reason}
                          for f in situation.failed],
            "rerender": {key: {"state": s.state, "reason": s.reason}
                         for key, s in snapshot.rerender.items()},
        }
        return web.json_response(text=redact(json.dumps(data, ensure_ascii=False)))

    # ------------------------------------------------------------------ writes
    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="shotrun review: send JSON\n")
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="shotrun review: not JSON\n") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="shotrun review: send a JSON object\n")
        return body

    async def _pick(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        shot, take = body.get("shot"), body.get("take")
        if not isinstance(shot, str) or not isinstance(take, int) or isinstance(take, bool):
            return _answer(400, "error", 'send {"shot": ID, "take": N}')
        return await self._submit(Wish("pick", shot, take))

    async def _note(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        key, text = body.get("key"), body.get("text")
        if not isinstance(key, str) or not isinstance(text, str):
            return _answer(400, "error", 'send {"key": "SHOT/take-N", "text": TEXT}')
        return await self._submit(Wish("note", key, text=text.strip()))

    def _check(self, wish: Wish) -> None:
        """Refuse at once what could never be saved (read-only, beside a run)."""
        if wish.kind == "note":
            check_note(self.manifest, wish.target, wish.text)
            require_rendered(self.manifest)
            return
        require_rendered(self.manifest)
        with self.store.open_reader() as store:
            check_pick(self.manifest, store, wish.target, wish.take)

    async def _submit(self, wish: Wish) -> web.Response:
        try:
            await asyncio.to_thread(self._check, wish)
        except ShotrunError as exc:
            return _answer(400, "error", str(exc))
        async with self._write_lock:
            self.pending.keep(wish)  # behind any wish still waiting: they are saved in order
            await asyncio.to_thread(self.pending.flush, self.manifest)
        self._poke.set()
        if any(w is wish for w in self.pending.wishes()):
            pid = self.store.run_pid()
            holder = f" (pid {pid})" if pid is not None else ""
            return _answer(202, "queued", f"a run is in progress{holder}: the "
                           f"{wish.describe()} is saved when it ends")
        for failed in self.pending.failed:
            if failed.wish is wish:
                return _answer(409, "error", f"not saved: {failed.reason}")
        done = (f"picked {wish.target} take {wish.take}" if wish.kind == "pick" else
                f"note saved on {wish.target}" if wish.text else
                f"note removed from {wish.target}")
        return _answer(200, "saved", done)


def _answer(status: int, state: str, message: str) -> web.Response:
    text = redact(json.dumps({"state": state, "message": message}, ensure_ascii=False))
    return web.json_response(text=text, status=status)
