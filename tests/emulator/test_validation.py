"""Each documented request rule is enforced: 400 ``invalid_request_error`` naming the field."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from runner.emulator import RunningEmulator
from tests.emulator.conftest import create, payload

IMG = "https://cdn.example/a.png"
VIDEO = {"video_url": "https://cdn.example/dance.mp4"}
FACE = {"frontal_image_url": IMG, "reference_image_urls": [IMG]}
SEGMENTS = [{"prompt": "one", "duration": 2}, {"prompt": "two", "duration": 3}]

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("prompt-too-long", {"prompt": "x" * 2501}, "prompt"),
    ("prompt-empty", {"prompt": "  "}, "prompt"),
    ("prompt-not-text", {"prompt": 42}, "prompt"),
    ("no-prompt", {"prompt": None}, "prompt"),
    ("prompt-and-multi", {"multi_prompt": SEGMENTS, "duration": 5}, "multi_prompt"),
    ("multi-sum-differs", {"prompt": None, "multi_prompt": SEGMENTS, "duration": 6},
     "multi_prompt"),
    ("multi-seven-segments", {"prompt": None, "duration": 7,
                              "multi_prompt": [{"prompt": "p", "duration": 1}] * 7},
     "multi_prompt"),
    ("multi-empty", {"prompt": None, "multi_prompt": []}, "multi_prompt"),
    ("multi-extra-key", {"prompt": None, "duration": 5, "multi_prompt": [
        {"prompt": "a", "duration": 5, "camera": "pan"}]}, "multi_prompt"),
    ("multi-segment-too-long", {"prompt": None, "duration": 5, "multi_prompt": [
        {"prompt": "x" * 2501, "duration": 5}]}, "multi_prompt"),
    ("multi-fractional", {"prompt": None, "duration": 5, "multi_prompt": [
        {"prompt": "a", "duration": 2.5}, {"prompt": "b", "duration": 2.5}]}, "multi_prompt"),
    ("shot-type-without-multi", {"shot_type": "customize"}, "shot_type"),
    ("shot-type-unknown", {"prompt": None, "multi_prompt": SEGMENTS, "duration": 5,
                           "shot_type": "auto"}, "shot_type"),
    ("resolution", {"resolution": "480p"}, "resolution"),
    ("aspect-ratio", {"aspect_ratio": "4:3"}, "aspect_ratio"),
    ("duration-short", {"duration": 2}, "duration"),
    ("duration-long", {"duration": 16}, "duration"),
    ("duration-float", {"duration": 5.5}, "duration"),
    ("duration-bool", {"duration": True}, "duration"),
    ("duration-text", {"duration": "5"}, "duration"),
    ("audio-not-bool", {"generate_audio": "yes"}, "generate_audio"),
    ("model", {"model": "kling-v2"}, "model"),
    ("no-model", {"model": None}, "model"),
    ("unknown-field", {"seed": 3}, "seed"),
    ("image-ref-beyond", {"prompt": "@Image1 meets @Image3", "image_urls": [IMG, IMG]},
     "prompt"),
    ("image-ref-none", {"prompt": "@Image1 walks"}, "prompt"),
    ("element-ref-beyond", {"prompt": "@Element2 waves", "elements": [FACE]}, "prompt"),
    ("multi-ref-beyond", {"prompt": None, "duration": 5, "multi_prompt": [
        {"prompt": "@Image2", "duration": 5}], "image_urls": [IMG]}, "multi_prompt"),
    ("video-subject-limit", {"elements": [VIDEO, FACE], "image_urls": [IMG, IMG, IMG]},
     "elements"),
    ("start-not-http", {"start_image_url": "file:///etc/passwd"}, "start_image_url"),
    ("end-ftp", {"end_image_url": "ftp://host/a.png"}, "end_image_url"),
    ("image-urls-not-list", {"image_urls": IMG}, "image_urls"),
    ("image-urls-data", {"image_urls": ["data:image/png;base64,AAAA"]}, "image_urls"),
    ("element-frontal-not-http", {"elements": [{"frontal_image_url": "s3://b/a.png"}]},
     "elements"),
    ("element-no-frontal", {"elements": [{"reference_image_urls": [IMG]}]}, "elements"),
    ("element-unknown-key", {"elements": [{**FACE, "name": "hero"}]}, "elements"),
    ("element-video-mixed", {"elements": [{**VIDEO, "frontal_image_url": IMG}]}, "elements"),
    ("callback-http", {"callback_url": "http://hooks.example/x"}, "callback_url"),
    ("callback-loopback", {"callback_url": "https://127.0.0.1/hook"}, "callback_url"),
    ("callback-localhost", {"callback_url": "https://localhost:8443/hook"}, "callback_url"),
    ("callback-private", {"callback_url": "https://192.168.1.10/hook"}, "callback_url"),
    ("callback-ipv6-loopback", {"callback_url": "https://[::1]/hook"}, "callback_url"),
    ("callback-too-long", {"callback_url": "https://hooks.example/" + "a" * 2030},
     "callback_url"),
]


@pytest.mark.parametrize(("changes", "param"), [(c, p) for _, c, p in REFUSED],
                         ids=[name for name, _, _ in REFUSED])
async def test_invalid_request_is_refused_with_its_param(
    emulator: RunningEmulator, http: aiohttp.ClientSession, changes: dict[str, Any], param: str
) -> None:
    async with http.post("/v1/videos/generations", json=payload(**changes)) as response:
        body = await response.json()
    assert response.status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param
    assert body["error"]["message"]
    assert emulator.stats()["accepted_tasks"] == 0


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("defaults-only", {"resolution": None, "aspect_ratio": None, "duration": None,
                       "generate_audio": None}),
    ("prompt-at-limit", {"prompt": "y" * 2500}),
    ("multi-prompt", {"prompt": None, "multi_prompt": SEGMENTS, "shot_type": "customize",
                      "duration": 5}),
    ("multi-without-shot-type", {"prompt": None, "multi_prompt": SEGMENTS, "duration": 5}),
    ("six-segments", {"prompt": None, "duration": 6,
                      "multi_prompt": [{"prompt": "p", "duration": 1}] * 6}),
    ("references-within-counts", {"prompt": "@Image1 and @Image2 meet @Element1",
                                  "image_urls": [IMG, IMG], "elements": [FACE]}),
    ("video-subject-at-limit", {"elements": [VIDEO, FACE], "image_urls": [IMG, IMG]}),
    ("images-without-video-no-limit", {"elements": [FACE] * 3, "image_urls": [IMG] * 3}),
    ("frontal-only-element", {"elements": [{"frontal_image_url": IMG}]}),
    ("all-frames", {"start_image_url": IMG, "end_image_url": "http://cdn.example/b.jpg"}),
    ("public-callback", {"callback_url": "https://hooks.example/shotrun?x=1"}),
    ("durations-at-bounds", {"duration": 15}),
    ("square-4k-audio", {"aspect_ratio": "1:1", "resolution": "4k", "generate_audio": True}),
]


@pytest.mark.parametrize("changes", [c for _, c in ACCEPTED], ids=[n for n, _ in ACCEPTED])
async def test_valid_requests_are_accepted(
    emulator: RunningEmulator, http: aiohttp.ClientSession, changes: dict[str, Any]
) -> None:
    emulator.update(queue_time=60.0)  # nothing needs to render for this check
    body = await create(http, **changes)
    assert body["status"] == "pending"


async def test_a_body_that_is_not_an_object_is_refused(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/videos/generations", json=[payload()]) as response:
        body = await response.json()
    assert response.status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "param" not in body["error"]


async def test_an_oversized_body_is_413(http: aiohttp.ClientSession) -> None:
    huge = payload(prompt="x" * (17 * 1024 * 1024))
    async with http.post("/v1/videos/generations", json=huge) as response:
        body = await response.json()
    assert response.status == 413
    assert body["error"]["type"] == "request_too_large_error"
