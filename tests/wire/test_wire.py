"""The wire payload builder, renames, fingerprint and credit estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.core.model import FrameRef, ImageElement, LocalFile, Segment, TakeRequest, VideoElement
from runner.wire.payload import (
    build_payload,
    estimate_credits,
    fingerprint,
    preview_resolver,
)


def _local(sha: str = "ab" * 32, name: str = "a.png") -> LocalFile:
    return LocalFile(path=Path("/x") / name, sha256=sha, size=10, mime="image/png")


def test_single_prompt_payload_omits_unused_fields() -> None:
    body = build_payload(TakeRequest(prompt="hi", multi_prompt=None), preview_resolver)
    assert body == {
        "model": "kling-o3-reference-to-video",
        "prompt": "hi",
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "duration": 5,
        "generate_audio": False,
    }


def test_multi_prompt_sends_shot_type_and_no_prompt() -> None:
    request = TakeRequest(
        prompt=None, multi_prompt=(Segment("a", 3), Segment("b", 4)), duration=7
    )
    body = build_payload(request, preview_resolver)
    assert body["shot_type"] == "customize"
    assert "prompt" not in body
    assert body["multi_prompt"] == [{"prompt": "a", "duration": 3}, {"prompt": "b", "duration": 4}]


def test_media_and_elements_and_renames() -> None:
    request = TakeRequest(
        prompt="p",
        multi_prompt=None,
        start_frame="https://x/s.png",
        images=(_local(),),
        elements=(ImageElement(frontal="https://x/f.png", references=("https://x/r.png",)),
                  VideoElement(video="https://x/v.mp4")),
        extra={"callback_url": "https://hook"},
    )
    renames = {"start_frame": "image_start", "frontal": "front", "generate_audio": None}
    body = build_payload(request, lambda m: m if isinstance(m, str) else "U", renames)
    assert body["image_start"] == "https://x/s.png"
    assert "start_image_url" not in body
    assert "generate_audio" not in body
    assert body["image_urls"] == ["U"]
    assert body["elements"] == [
        {"front": "https://x/f.png", "reference_image_urls": ["https://x/r.png"]},
        {"video_url": "https://x/v.mp4"},
    ]
    assert body["callback_url"] == "https://hook"


def test_unknown_rename_key_is_refused() -> None:
    with pytest.raises(KeyError):
        build_payload(TakeRequest(prompt="p", multi_prompt=None), preview_resolver, {"nope": "x"})


def test_fingerprint_follows_content_not_place() -> None:
    a = TakeRequest(prompt="p", multi_prompt=None, images=(_local(name="a.png"),))
    moved = TakeRequest(prompt="p", multi_prompt=None, images=(_local(name="b.png"),))
    edited = TakeRequest(prompt="p", multi_prompt=None, images=(_local(sha="cd" * 32),))
    assert fingerprint(a) == fingerprint(moved)
    assert fingerprint(a) != fingerprint(edited)
    assert fingerprint(a) != fingerprint(TakeRequest(prompt="q", multi_prompt=None,
                                                     images=(_local(),)))


def test_fingerprint_includes_source_output_hash() -> None:
    ref = FrameRef("s01", "last")
    request = TakeRequest(prompt="p", multi_prompt=None, start_frame=ref)
    assert fingerprint(request, frame_hashes={ref: "1" * 64}) != fingerprint(
        request, frame_hashes={ref: "2" * 64}
    )


@pytest.mark.parametrize(
    ("resolution", "audio", "expected"),
    [("720p", False, 40.5), ("1080p", False, 54.0), ("1080p", True, 64.0), ("4k", True, 100.0)],
    ids=["720p", "1080p", "1080p-audio", "4k-audio-ignored"],
)
def test_estimate_credits(resolution: str, audio: bool, expected: float) -> None:
    rates = {"720p": 8.1, "1080p": 10.8, "4k": 20.0, "audio": 2.0}
    request = TakeRequest(prompt="p", multi_prompt=None, resolution=resolution,
                          generate_audio=audio)
    assert estimate_credits(request, rates) == pytest.approx(expected)


def test_estimate_unknown_rate_is_none() -> None:
    assert estimate_credits(TakeRequest(prompt="p", multi_prompt=None, resolution="4k"),
                            {"720p": 8.1}) is None
