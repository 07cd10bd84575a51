"""Real small media and hand-built runs for the report tests (no state store needed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from runner.core.model import (
    ApiConfig,
    Budget,
    FrameRef,
    ImageElement,
    LocalFile,
    Manifest,
    Segment,
    Take,
    TakeRequest,
)

XSS_PROMPT = (
    "<script>document.title='pwned';window.__pwned=1</script>"
    " @Element1 & \"friends\" <img src=x onerror=\"window.__pwned=2\">"
)


def make_video(path: Path, *, seconds: float = 1.0, size: tuple[int, int] = (64, 36),
               fps: int = 8, colour: tuple[int, int, int] = (40, 120, 200)) -> Path:
    """Encode a real H.264 MP4 of a plain colour with a moving bar (browsers can play it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for index in range(max(1, round(seconds * fps))):
            pixels = np.zeros((height, width, 3), dtype=np.uint8)
            pixels[:, :] = colour
            bar = (index * 4) % width
            pixels[:, bar : bar + 4] = (250, 250, 250)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (320, 320)
               ) -> LocalFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")
    data = path.read_bytes()
    return LocalFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                     mime="image/png")


@dataclass(frozen=True)
class FakeRecord:
    """Just the fields of a state record the report reads."""

    shot_id: str
    take: int
    status: str
    fingerprint: str
    key: str = ""
    task_id: str | None = None
    attempts: int = 1
    credits_estimated: float | None = None
    credits_reserved: float | None = None
    output_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    last_error_code: str | None = None
    last_error: str | None = None
    polls: int = 0
    submitted_at: float | None = None
    completed_at: float | None = None
    downloaded_at: float | None = None
    failure_kind: str | None = None
    progress: int | None = None
    reason: str | None = None
    verified_duration: float | None = None
    video: dict[str, Any] | None = None


def fp(shot_id: str, take: int) -> str:
    return hashlib.sha256(f"{shot_id}/{take}".encode()).hexdigest()


def demo_manifest(root: Path) -> Manifest:
    """Three shots: two takes with inputs, a shot with a hostile prompt, a multi-prompt shot."""
    coast = make_image(root / "assets" / "coast.png", (30, 140, 190))
    hero = make_image(root / "assets" / "hero.png", (200, 90, 60))
    takes = []
    request1 = TakeRequest(
        prompt="The coast of @Image1; @Element1 walks out of the mist, @stranger waves",
        multi_prompt=None, images=(coast,), elements=(ImageElement(hero, (coast,)),),
        start_frame="https://cdn.example/start.jpg",
    )
    for number in (1, 2):
        takes.append(Take("s01-arrival", number, request1, fp("s01-arrival", number),
                          tags=("act1",)))
    request2 = TakeRequest(prompt=XSS_PROMPT, multi_prompt=None,
                           elements=(ImageElement(hero),), aspect_ratio="9:16")
    takes.append(Take("s02-look", 1, request2, fp("s02-look", 1),
                      tags=("act2", "<b>bold</b>")))
    request3 = TakeRequest(prompt=None, multi_prompt=(Segment("wide shot", 3),
                                                      Segment("close-up", 2)),
                           start_frame=FrameRef("s01-arrival", "last"), aspect_ratio="1:1")
    takes.append(Take("s03-turn", 1, request3, fp("s03-turn", 1), tags=("act2",)))
    return Manifest(path=root / "demo.yaml", name="demo-run", output_dir=root / "renders",
                    api=ApiConfig(), budget=Budget(), takes=tuple(takes))


def demo_records(manifest: Manifest) -> list[FakeRecord]:
    """s01 take 1 done, s01 take 2 failed, s02 done, s03 never run."""
    out = manifest.output_dir
    video1 = make_video(out / "s01-arrival" / "take-1.mp4")
    video2 = make_video(out / "s02-look" / "take-1.mp4", size=(36, 64), colour=(180, 60, 90))
    records = []
    for shot, take, video in (("s01-arrival", 1, video1), ("s02-look", 1, video2)):
        data = video.read_bytes()
        records.append(FakeRecord(
            shot, take, "done", fp(shot, take), key=f"{shot}/take-{take}",
            task_id=f"task-{shot}-{take}", attempts=1,
            credits_estimated=40.5, credits_reserved=40.5,
            output_path=str(video.relative_to(out)), size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), polls=3,
            submitted_at=1000.0, completed_at=1060.0, downloaded_at=1062.5))
    records.append(FakeRecord(
        "s01-arrival", 2, "failed", fp("s01-arrival", 2), key="s01-arrival/take-2",
        task_id="task-s01-2", attempts=2,
        credits_estimated=40.5, last_error_code="content_policy_violation",
        last_error="The prompt <was> refused", failure_kind="permanent",
        reason="prompt changed", polls=5, submitted_at=1000.0,
        completed_at=1030.0))
    return records
