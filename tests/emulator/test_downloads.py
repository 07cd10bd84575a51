"""Result links: signed, expiring (403, then a fresh link on re-query), ranged, faulty."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from runner.emulator import RunningEmulator
from tests.emulator.conftest import create, fetch, polls, wait_for_status


async def completed(http: aiohttp.ClientSession) -> dict[str, Any]:
    body = await wait_for_status(http, (await create(http))["id"])
    assert body["status"] == "completed"
    return body


async def test_links_expire_with_403_and_a_new_query_gives_a_fresh_one(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(link_ttl=0.6)
    body = await completed(http)
    link = body["results"][0]
    status = 200
    for _ in polls():  # poll the link itself until it expires
        async with http.get(link, headers={"Range": "bytes=0-0"}) as response:
            status = response.status
            error = await response.json() if status == 403 else None
        if status == 403:
            break
        await asyncio.sleep(0.01)
    assert status == 403 and error is not None
    assert error["error"]["type"] == "permission_error"
    assert error["error"]["code"] == "link_expired"
    assert emulator.stats()["expired_link_hits"] >= 1
    again = await wait_for_status(http, body["id"])
    fresh = again["results"][0]
    assert fresh != link
    assert (await fetch(http, fresh))[0] == 200


async def test_a_link_with_a_forged_signature_is_refused(http: aiohttp.ClientSession) -> None:
    link = (await completed(http))["results"][0]
    forged = link.split("?")[0] + "?sig=forged"
    async with http.get(forged) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "invalid_signature"
    async with http.get(link.split("?")[0]) as response:
        assert response.status == 403


async def test_an_unknown_result_is_404(emulator: RunningEmulator,
                                        http: aiohttp.ClientSession) -> None:
    async with http.get("/results/task-unified-1757169743-7cvnl5zw.mp4?sig=x") as response:
        assert response.status == 404
        assert (await response.json())["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", None, None)],
    ids=["closed", "open-ended", "suffix"],
)
async def test_range_requests_answer_206_with_content_range(
    http: aiohttp.ClientSession, header: str, first: int | None, last: int | None
) -> None:
    link = (await completed(http))["results"][0]
    _, whole = await fetch(http, link)
    size = len(whole)
    async with http.get(link, headers={"Range": header}) as response:
        part = await response.read()
        assert response.status == 206
        assert response.headers["Accept-Ranges"] == "bytes"
        assert int(response.headers["Content-Length"]) == len(part)
        start = first if first is not None else size - 50
        end = last if last is not None else size - 1
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert part == whole[start : end + 1]


async def test_multiple_or_malformed_ranges_get_the_whole_file(
    http: aiohttp.ClientSession
) -> None:
    link = (await completed(http))["results"][0]
    whole = (await fetch(http, link))[1]
    for header in ("bytes=0-1,5-6", "lines=1-2", "bytes=x-y"):
        assert await fetch(http, link, headers={"Range": header}) == (200, whole)


async def test_a_range_past_the_end_is_416(http: aiohttp.ClientSession) -> None:
    link = (await completed(http))["results"][0]
    size = len((await fetch(http, link))[1])
    async with http.get(link, headers={"Range": f"bytes={size}-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{size}"


async def test_full_download_always_has_content_length(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    link = (await completed(http))["results"][0]
    async with http.get(link) as response:
        data = await response.read()
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(data)
        assert response.headers["Content-Type"] == "video/mp4"
    async with http.head(link) as response:
        assert response.status == 200 and int(response.headers["Content-Length"]) == len(data)
    assert emulator.stats()["downloads"] >= 1


async def test_truncated_downloads_close_early_and_a_range_resumes_them(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    link = (await completed(http))["results"][0]
    whole = (await fetch(http, link))[1]
    emulator.update(truncate_rate=1.0)
    got = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(link) as response:
            assert int(response.headers["Content-Length"]) == len(whole)
            async for chunk in response.content.iter_any():
                got += chunk
    assert 0 < len(got) < len(whole) and whole.startswith(got)
    assert emulator.stats()["truncated"] >= 1
    emulator.update(truncate_rate=0.0)
    async with http.get(link, headers={"Range": f"bytes={len(got)}-"}) as response:
        rest = await response.read()
    assert got + rest == whole


async def test_download_rate_throttles_the_transfer(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    link = (await completed(http))["results"][0]
    whole = (await fetch(http, link))[1]
    emulator.update(download_rate=len(whole) / 0.5)  # half a second's worth
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(link) as response:
        data = await response.read()
    assert data == whole
    # A lower bound only (a throttle can be slower, never faster): all but the last tenth
    # of a second of pacing must have happened.
    assert loop.time() - started >= 0.35


async def test_a_client_leaving_mid_download_is_not_a_server_error(
    emulator: RunningEmulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    link = (await completed(http))["results"][0]
    emulator.update(download_rate=4096)
    async with http.get(link) as response:
        await response.content.readexactly(1024)
        response.close()  # hang up with most of the body unsent
    for _ in polls():  # until the server has noticed and ended the transfer
        if emulator.stats()["downloads_active"] == 0:
            break
        await asyncio.sleep(0.01)
    assert emulator.stats()["downloads_active"] == 0
    emulator.update(download_rate=None)
    assert (await fetch(http, link))[0] == 200  # still serving
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
