"""Uploads through the file service's multipart stream endpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from runner.core.errors import MalformedResponse, PermanentGatewayError
from runner.wire.protocol import UploadedFile

from .conftest import KEY, Serve, assert_no_key

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def _answer(**data: Any) -> dict[str, Any]:
    base = {"file_id": "f-1", "file_name": "ref.png", "file_url": "https://files.example/f-1.png",
            "download_url": "https://files.example/d/f-1.png", "mime_type": "image/png"}
    base.update(data)
    return {"success": True, "code": 200, "msg": "ok", "data": base}


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "ref.png"
    path.write_bytes(PNG)
    return path


async def test_upload_sends_multipart_to_the_files_url_and_parses_expiry(
    serve: Serve, clients: Any, image: Path
) -> None:
    seen: dict[str, Any] = {}

    async def upload(request: web.Request) -> web.Response:
        seen["auth"] = request.headers.get("Authorization")
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        seen["file"] = (upload.filename, upload.content_type, upload.file.read())
        seen["file_name"] = form["file_name"]
        return web.json_response(_answer(expires_at="2026-11-27T09:00:00Z"))

    files = await serve("POST", "/api/v1/files/upload/stream", upload)
    gateway = await serve("GET", "/unused", upload)
    client = clients(gateway, files_url=str(files.make_url("/")))
    result = await client.upload_file(image, "image/png")
    assert seen == {"auth": f"Bearer {KEY}", "file": ("ref.png", "image/png", PNG),
                    "file_name": "ref.png"}
    expected = datetime(2026, 11, 27, 9, 0, tzinfo=UTC).timestamp()
    assert result == UploadedFile(url="https://files.example/f-1.png", expires_at=expected,
                                  file_id="f-1")


@pytest.mark.parametrize(
    ("data", "url", "expires"),
    [({"expires_at": 1764234000}, "https://files.example/f-1.png", 1764234000.0),
     ({"expires_at": 1764234000000}, "https://files.example/f-1.png", 1764234000.0),
     ({"file_url": None}, "https://files.example/d/f-1.png", None),
     ({"expires_at": "next week"}, "https://files.example/f-1.png", None)],
    ids=["epoch", "epoch-ms", "download-url-fallback", "unreadable-expiry"],
)
async def test_upload_answer_variants(
    serve: Serve, clients: Any, image: Path, data: dict[str, Any], url: str,
    expires: float | None,
) -> None:
    async def upload(request: web.Request) -> web.Response:
        return web.json_response(_answer(**data))

    server = await serve("POST", "/api/v1/files/upload/stream", upload)
    result = await clients(server).upload_file(image, "image/png")
    assert (result.url, result.expires_at) == (url, expires)


async def test_upload_refused_by_the_service_is_permanent_with_its_message(
    serve: Serve, clients: Any, image: Path
) -> None:
    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"success": False, "code": 400, "msg": f"bad image {KEY}"})

    server = await serve("POST", "/api/v1/files/upload/stream", upload)
    with pytest.raises(PermanentGatewayError, match="refused the upload: 'bad image") as info:
        await clients(server).upload_file(image, "image/png")
    assert_no_key(info.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [({"success": True}, "'data' is missing"),
     ({"success": True, "data": {"file_url": 3}}, "no 'data.file_url'"),
     ({"success": True, "data": {"file_url": "file:///etc/passwd"}}, "http or https")],
    ids=["no-data", "url-not-text", "url-not-http"],
)
async def test_upload_malformed_answers(
    serve: Serve, clients: Any, image: Path, answer: dict[str, Any], message: str
) -> None:
    async def upload(request: web.Request) -> web.Response:
        return web.json_response(answer)

    server = await serve("POST", "/api/v1/files/upload/stream", upload)
    with pytest.raises(MalformedResponse, match=message):
        await clients(server).upload_file(image, "image/png")


async def test_upload_refuses_bad_input_without_a_request(
    serve: Serve, clients: Any, image: Path, tmp_path: Path
) -> None:
    calls: list[str] = []

    async def upload(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response(_answer())

    server = await serve("POST", "/api/v1/files/upload/stream", upload)
    client = clients(server)
    with pytest.raises(PermanentGatewayError, match="type image/tiff is not accepted"):
        await client.upload_file(image, "image/tiff")
    with pytest.raises(PermanentGatewayError, match=r"cannot upload .*missing\.png"):
        await client.upload_file(tmp_path / "missing.png", "image/png")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (10 * 1024 * 1024 + 1))
    with pytest.raises(PermanentGatewayError, match="10 MB"):
        await client.upload_file(big, "image/png")
    assert calls == []
