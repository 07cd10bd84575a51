"""The videos are real: decoded with PyAV, they have the asked size, length, rate and audio."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from runner.core.model import frame_size
from runner.emulator import RunningEmulator
from runner.emulator.video import RenderSpec, Shot, render
from tests.emulator.conftest import create, fetch, png_bytes, wait_for_status


def probe(data: bytes) -> dict[str, Any]:
    """What a decoder sees in ``data``: video and audio facts, and every frame's mean colour."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        facts: dict[str, Any] = {
            "codec": video.codec_context.name,
            "size": (video.width, video.height),
            "fps": float(video.average_rate),
            "audio": bool(container.streams.audio),
            "duration": float(video.duration * video.time_base),
        }
        means = [frame.reformat(width=64, height=64, format="rgb24").to_ndarray()
                 .reshape(-1, 3).mean(axis=0) for frame in container.decode(video=0)]
        facts["frames"] = len(means)
        facts["means"] = np.array(means)
    return facts


async def rendered(http: aiohttp.ClientSession, **changes: Any) -> bytes:
    created = await create(http, **changes)
    body = await wait_for_status(http, created["id"])
    assert body["status"] == "completed", body
    status, data = await fetch(http, body["results"][0])
    assert status == 200
    return data


@pytest.mark.parametrize(
    ("aspect_ratio", "duration", "audio"),
    [("16:9", 3, False), ("9:16", 4, True), ("1:1", 3, True)],
    ids=["landscape-silent", "portrait-audio", "square-audio"],
)
async def test_video_has_exact_size_duration_rate_and_audio(
    http: aiohttp.ClientSession, aspect_ratio: str, duration: int, audio: bool
) -> None:
    facts = probe(await rendered(http, aspect_ratio=aspect_ratio, duration=duration,
                                 generate_audio=audio))
    assert facts["codec"] == "h264"
    assert facts["size"] == frame_size("720p", aspect_ratio)
    assert facts["fps"] == 24
    assert facts["frames"] == 24 * duration
    assert facts["duration"] == pytest.approx(duration)
    assert facts["audio"] is audio


@pytest.mark.parametrize(
    ("render", "aspect_ratio", "scale", "size"),
    [("full", "16:9", 0.125, (160, 90)), ("full", "9:16", 0.75, (540, 960)),
     ("cached", "1:1", 0.5, (360, 360))],
    ids=["eighth-landscape", "three-quarters-portrait", "cached-half-square"],
)
async def test_output_scale_renders_other_sizes_than_the_nominal_ones(
    emulator: RunningEmulator, http: aiohttp.ClientSession, render: str, aspect_ratio: str,
    scale: float, size: tuple[int, int],
) -> None:
    emulator.update(output_scale=scale, render=render)
    facts = probe(await rendered(http, aspect_ratio=aspect_ratio, duration=3))
    assert facts["size"] == size and facts["duration"] == pytest.approx(3)


async def test_each_multi_prompt_segment_starts_with_a_visible_cut(
    http: aiohttp.ClientSession
) -> None:
    segments = [{"prompt": "a beach", "duration": 1}, {"prompt": "a forest", "duration": 1},
                {"prompt": "a city at night", "duration": 2}]
    facts = probe(await rendered(http, prompt=None, multi_prompt=segments,
                                 shot_type="customize", duration=4))
    means = facts["means"]
    jumps = np.abs(np.diff(means, axis=0)).sum(axis=1)
    cuts = sorted(np.argsort(jumps)[-2:] + 1)
    assert cuts == [24, 48]  # the two biggest changes are exactly at the segment starts
    assert jumps[23] > 10 * np.median(jumps)


async def test_start_frame_picture_comes_from_an_uploaded_image(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    import base64

    green = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    async with http.post("/api/v1/files/upload/base64", json={"base64_data": green}) as resp:
        url = (await resp.json())["data"]["file_url"]
    facts = probe(await rendered(http, start_image_url=url))
    red, green_mean, blue = facts["means"][0]
    assert green_mean > red + 60 and green_mean > blue + 60  # the first frame is green


async def test_unreachable_pictures_give_a_plain_colour_not_a_failure(
    http: aiohttp.ClientSession
) -> None:
    facts = probe(await rendered(http, start_image_url="https://cdn.example/nowhere.png",
                                 image_urls=["http://127.0.0.1:9/missing.png"]))
    assert facts["frames"] == 72


def test_a_single_segment_with_an_end_frame_ends_on_it() -> None:
    red = png_bytes(colour=(220, 0, 0))
    blue = png_bytes(colour=(0, 0, 220))
    data = render(RenderSpec(320, 180, (Shot("p", 3, red),), end_picture=blue))
    means = probe(data)["means"]
    assert means[0][0] > means[0][2] + 60  # starts red
    assert means[-1][2] > means[-1][0] + 60  # ends blue


async def test_cached_mode_reuses_one_clip_per_size_duration_and_audio(
    emulator: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.update(render="cached")
    first = await rendered(http, prompt="one")
    second = await rendered(http, prompt="two")
    other = await rendered(http, prompt="three", duration=4)
    assert first == second and first != other
    assert emulator.stats()["renders"] == 2
    assert probe(other)["frames"] == 96


def test_segments_reusing_one_image_still_cut_visibly() -> None:
    grey = png_bytes(colour=(128, 128, 128))
    spec = RenderSpec(320, 180, (Shot("same place", 1, grey), Shot("same place", 1, grey),
                                 Shot("same place", 1, grey)))
    means = probe(render(spec))["means"]
    jumps = np.abs(np.diff(means, axis=0)).sum(axis=1)
    assert sorted(np.argsort(jumps)[-2:] + 1) == [24, 48]
    assert min(jumps[23], jumps[47]) > 10 * np.median(jumps)
