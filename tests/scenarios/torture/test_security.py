"""Security: the key never leaks, nothing is written outside the output folder, only sane links.

The key is recognisable (``sk-TORTURE-...``) so that a grep over every byte shotrun leaves
behind (console, ``run.log``, the store and its WAL, sidecars, ``report.html``) finds any
copy. A hostile gateway (a relay in front of the emulator) echoes the key in its error text,
hands out ``file://`` links, names that climb out of the folder, endless redirects and
oversized results; each must fail its take clearly, never the run, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
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
    url_of,
)


def _everything_written(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assert_no_key(root: Path, *texts: str) -> None:
    """The key (or its long tail) is in none of ``texts`` and no file under ``root``."""
    needles = (KEY.encode(), KEY[12:].encode())
    for text in texts:
        assert KEY not in text and KEY[12:] not in text
    crash_logs = Path(os.environ["XDG_CACHE_HOME"]) / "shotrun"  # isolated per test
    for path in _everything_written(root) + _everything_written(crash_logs):
        data = path.read_bytes()
        assert not any(n in data for n in needles), f"the API key leaked into {path}"


def _debug(args: list[str]) -> list[str]:
    """``python -m runner -vv run ...``: debug logging (a global flag, before the command)."""
    return [*args[:3], "-vv", *args[3:]]


def _rewrite_results(url: str) -> Any:
    async def hook(request: web.Request, payload: bytes) -> bytes:
        data = json.loads(payload)
        if isinstance(data, dict) and data.get("results"):
            data["results"] = [url.replace("{origin}", str(request.url.origin()))]
        return json.dumps(data).encode()
    return hook


async def test_the_key_leaks_nowhere_after_a_clean_debug_run_and_its_report(
        tmp_path: Path) -> None:
    path = manifest(tmp_path, 2)
    async with run_emulator(emulator(seed=31)) as emu:
        code, out, err = await run_cli(_debug(run_args(path, emu.base_url)))
        assert code == 0, out + err
        shotrun = run_args(path, emu.base_url)[:3]  # python -m runner
        rcode, rout, rerr = await run_cli([*shotrun, "report", str(path)])
        scode, sout, serr = await run_cli([*shotrun, "status", str(path), "--json"])
    assert rcode == 0 and scode == 0, rout + rerr
    assert (tmp_path / "out" / "report.html").is_file()
    assert "debug" in err.lower()  # -vv really logged at debug level
    assert_no_key(tmp_path, out, err, rout, rerr, sout, serr)


async def test_the_key_leaks_nowhere_when_the_gateway_echoes_it_in_errors_and_failures(
        tmp_path: Path) -> None:
    async def echo(request: web.Request, body: bytes) -> web.StreamResponse | None:
        header = request.headers.get("Authorization", "")
        if request.method == "POST" and "generations" in request.path:
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "invalid_request",
                                                "message": f"bad request from {header}"}},
                                     status=400)
        return None

    path = manifest(tmp_path, 2)
    blocker = tmp_path / "out" / "s001"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    async with run_emulator(emulator(seed=32)) as emu:
        front = await serve(relay(emu.base_url, echo))
        try:
            code, out, err = await run_cli(_debug(run_args(path, url_of(front), "--json")))
        finally:
            await front.close()
    assert code == 1
    failed = json.loads(out)["failed"]
    assert len(failed) == 2 and all("bad request from" in f["message"] for f in failed), failed
    assert_no_key(tmp_path, out, err)


@pytest.mark.parametrize("bad_id", ["../escape", "/abs/path", "a/../../b", "..", "x\\..\\y"])
async def test_shot_ids_cannot_name_paths_outside_the_output_folder(
        tmp_path: Path, bad_id: str) -> None:
    path = tmp_path / "shots.yaml"
    path.write_text(f"version: 1\nname: t\noutput_dir: out\napi: {{base_url: emulator}}\n"
                    f"shots:\n  - id: {json.dumps(bad_id)}\n    prompt: x\n", encoding="utf-8")
    code, out, err = await run_cli(run_args(path, "emulator"))
    assert code == 2, out + err
    assert "Traceback" not in err and "shots" in out + err
    assert not (tmp_path / "out").exists()


async def test_server_provided_names_cannot_write_outside_the_output_folder(
        tmp_path: Path) -> None:
    async def named(request: web.Request, payload: bytes) -> bytes:
        return await _rewrite_results("{origin}/results/..%2F..%2F..%2Fescaped.mp4"
                                      "?name=../../escaped.mp4")(request, payload)

    async def serve_named(request: web.Request, body: bytes) -> web.StreamResponse | None:
        if "escaped" in request.path:
            video = next(p for p in sorted(saved.rglob("*.mp4")))
            return web.Response(body=video.read_bytes(), content_type="video/mp4", headers={
                "Content-Disposition": 'attachment; filename="../../../escaped.mp4"'})
        return None

    saved = tmp_path / "reference"
    saved.mkdir()
    ref_manifest = manifest(saved, 1)
    path = manifest(tmp_path, 2)
    async with run_emulator(emulator(seed=33)) as emu:
        assert (await run_cli(run_args(ref_manifest, emu.base_url)))[0] == 0
        front = await serve(relay(emu.base_url, serve_named, named))
        try:
            await run_cli(run_args(path, url_of(front)))
        finally:
            await front.close()
    outside = [p for p in _everything_written(tmp_path)
               if not p.is_relative_to(tmp_path / "out") and not p.is_relative_to(saved)
               and p != path]
    assert outside == []
    assert not list(tmp_path.parent.glob("escaped*"))


@pytest.mark.parametrize(("link", "words"), [
    ("file:///etc/passwd", "file"),
    ("ftp://127.0.0.1/x.mp4", "ftp"),
    ("{origin}/loop", "redirect"),
])
async def test_only_http_links_are_followed_and_redirects_are_limited(
        tmp_path: Path, link: str, words: str) -> None:
    async def loop(request: web.Request, body: bytes) -> web.StreamResponse | None:
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return None

    path = manifest(tmp_path, 1)
    async with run_emulator(emulator(seed=34)) as emu:
        front = await serve(relay(emu.base_url, loop, _rewrite_results(link)))
        try:
            code, out, err = await run_cli([*run_args(path, url_of(front)), "--json"])
        finally:
            await front.close()
    assert code == 1, out
    failed = json.loads(out)["failed"]
    assert len(failed) == 1 and words in failed[0]["message"].lower(), failed
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "s000" / "take-1.mp4").exists()


async def test_a_result_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    path = manifest(tmp_path, 1)
    async with run_emulator(emulator(seed=35)) as emu:
        code, out, _err = await run_cli([*run_args(path, emu.base_url), "--json",
                                        "--max-result-size", "8K"])
    failed = json.loads(out)["failed"]
    assert code == 1 and len(failed) == 1 and "cap" in failed[0]["message"], failed
    assert not list((tmp_path / "out").rglob("*.part"))


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_verification_is_on_and_the_usual_switches_do_not_turn_it_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from aiohttp.test_utils import TestServer

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    path = manifest(tmp_path, 1)
    for name in ("PYTHONHTTPSVERIFY", "CURL_INSECURE", "SHOTRUN_INSECURE", "SSL_NO_VERIFY"):
        monkeypatch.setenv(name, "0" if name == "PYTHONHTTPSVERIFY" else "1")
    async with run_emulator(emulator(seed=36)) as emu:
        server = TestServer(relay(emu.base_url), host="127.0.0.1")
        await server.start_server(ssl=context)
        try:
            base = f"https://127.0.0.1:{server.port}"
            code, out, err = await run_cli([*run_args(path, base), "--json"])
            accepted = emu.stats()["creation_requests"]
        finally:
            await server.close()
    assert code == 1 and accepted == 0, out
    assert "certificate" in (out + err).lower() and "Traceback" not in err, out + err
    # No switch to turn it off exists either.
    _, help_text, _ = await run_cli([*run_args(path, base)[:3], "run", "--help"])
    # (--verify-size is about the video's pixel size, not TLS.)
    options = set(re.findall(r"--[a-z][a-z0-9-]*", help_text.lower()))
    assert not {o for o in options if any(word in o for word in (
        "insecure", "tls", "ssl", "cert", "no-verify", "verify-ssl", "verify-tls"))}, options
    assert "--verify-size" in options


async def test_store_and_logs_are_private_and_outputs_follow_the_umask(tmp_path: Path) -> None:
    path = manifest(tmp_path, 1)
    async with run_emulator(emulator(seed=37)) as emu:
        code, out, err = await run_cli(run_args(path, emu.base_url),
                                       preexec=lambda: os.umask(0o027))
    assert code == 0, out + err
    audit(tmp_path, 1)
    private = tmp_path / "out" / ".shotrun"
    assert any(private.iterdir())
    for item in private.rglob("*"):  # the store, logs, posters and frames: the user's only
        expected = 0o700 if item.is_dir() else 0o600
        assert stat.S_IMODE(item.stat().st_mode) == expected, item
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o750
    video = tmp_path / "out" / "s000" / "take-1.mp4"
    assert stat.S_IMODE(video.stat().st_mode) == 0o640
    assert stat.S_IMODE(video.parent.stat().st_mode) == 0o750


def test_a_crash_log_is_private_and_carries_no_key(tmp_path: Path) -> None:
    from runner import cli
    from runner.core.redact import register_secret

    register_secret(KEY)
    try:
        raise RuntimeError(f"boom while sending Authorization: Bearer {KEY}")
    except RuntimeError as exc:
        written = cli.write_crash_log(exc)
    assert written is not None
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "boom while sending" in written.read_text()
    assert_no_key(tmp_path)
