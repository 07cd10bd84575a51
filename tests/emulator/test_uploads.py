"""The file service: three upload endpoints, content-judged types, size cap, expiry."""

from __future__ import annotations

import base64
import io
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from runner.emulator import RunningEmulator
from tests.emulator.conftest import fetch, jpeg_bytes, png_bytes, polls


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 300), (10, 20, 30)).save(out, format=fmt)
    return out.getvalue()


async def post(http: aiohttp.ClientSession, path: str, **kw: Any) -> tuple[int, Any]:
    async with http.post(f"/api/v1/files/upload/{path}", **kw) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                           ("GIF", "image/gif"), ("WEBP", "image/webp")])
async def test_base64_upload_of_each_accepted_type(
    http: aiohttp.ClientSession, fmt: str, mime: str
) -> None:
    data = image(fmt)
    for encoded in (base64.b64encode(data).decode(),
                    f"data:{mime};base64," + base64.b64encode(data).decode()):
        status, body = await post(http, "base64", json={"base64_data": encoded})
        assert status == 200 and body["success"] is True and body["code"] == 200
        assert body["data"]["mime_type"] == mime and body["data"]["file_size"] == len(data)
        assert (await fetch(http, body["data"]["file_url"])) == (200, data)
        assert (await fetch(http, body["data"]["download_url"])) == (200, data)


async def test_stream_upload_keeps_names_and_path(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("file", jpeg_bytes(), filename="hero front.jpg", content_type="image/jpeg")
    form.add_field("upload_path", "heroes")
    status, body = await post(http, "stream", data=form)
    assert status == 200
    data = body["data"]
    assert data["original_name"] == "hero front.jpg" and data["upload_path"] == "heroes"
    assert data["mime_type"] == "image/jpeg"
    assert (await fetch(http, data["file_url"]))[0] == 200
    assert emulator.stats()["uploads"] == 1


async def test_type_is_judged_by_content_not_by_the_claim(http: aiohttp.ClientSession
                                                          ) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.4 not an image", filename="x.png",
                   content_type="image/png")
    status, body = await post(http, "stream", data=form)
    assert status == 400 and body["error"]["param"] == "file"
    fake = "data:image/png;base64," + base64.b64encode(b"GIF8 but not really").decode()
    status, body = await post(http, "base64", json={"base64_data": fake})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("json_body", "param"),
    [({"base64_data": "!!!not base64!!!"}, "base64_data"), ({}, "base64_data"),
     ({"base64_data": "AAAA", "tags": []}, "tags"), ({"base64_data": 7}, "base64_data")],
    ids=["garbage", "missing", "unknown-field", "not-text"],
)
async def test_bad_base64_requests(http: aiohttp.ClientSession, json_body: dict[str, Any],
                                   param: str) -> None:
    status, body = await post(http, "base64", json=json_body)
    assert status == 400 and body["error"]["param"] == param


async def test_files_over_10_mb_are_413(http: aiohttp.ClientSession) -> None:
    big = png_bytes()[:-12] + b"\x00" * (10 * 1024 * 1024) + png_bytes()[-12:]
    form = aiohttp.FormData()
    form.add_field("file", big, filename="big.png", content_type="image/png")
    status, body = await post(http, "stream", data=form)
    assert status == 413 and body["error"]["type"] == "request_too_large_error"


async def test_stream_upload_needs_a_file_field(http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("upload_path", "x")
    form.add_field("other", b"zz", filename="z.bin")
    status, body = await post(http, "stream", data=form)
    assert status == 400 and body["error"]["param"] in ("file", "other")


async def test_url_upload_fetches_loopback_and_own_files_only(
    http: aiohttp.ClientSession
) -> None:
    async def serve_png(_: web.Request) -> web.Response:
        return web.Response(body=png_bytes(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/pic.png", serve_png)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        status, body = await post(http, "url", json={"file_url": str(server.make_url("/pic.png"))})
        assert status == 200 and body["data"]["original_name"] == "pic.png"
        own = body["data"]["file_url"]
        status, again = await post(http, "url", json={"file_url": own})
        assert status == 200 and again["data"]["file_size"] == body["data"]["file_size"]
        status, missing = await post(http, "url",
                                     json={"file_url": str(server.make_url("/nope.png"))})
        assert status == 400 and missing["error"]["param"] == "file_url"
    finally:
        await server.close()
    status, body = await post(http, "url", json={"file_url": "https://cdn.example/a.png"})
    assert status == 400 and body["error"]["param"] == "file_url"
    status, body = await post(http, "url", json={"file_url": "file:///etc/passwd"})
    assert status == 400 and body["error"]["param"] == "file_url"


async def test_uploads_expire(emulator: RunningEmulator, http: aiohttp.ClientSession) -> None:
    emulator.update(upload_ttl=0.2)
    encoded = base64.b64encode(png_bytes()).decode()
    status, body = await post(http, "base64", json={"base64_data": encoded})
    url = body["data"]["file_url"]
    for _ in polls():  # poll the file itself until it is gone
        status, _ = await fetch(http, url)
        if status != 200:
            break
    async with http.get(url) as response:
        error = await response.json()
        assert response.status == 404 and error["error"]["code"] == "file_expired"
    async with http.get("/files/file_unknown/x.png") as response:
        assert response.status == 404
