"""Chains of shots against the real emulator: takes with frames of other shots, and a runner
that also hands back the plans (their reasons are part of what is tested)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from runner.core.model import (
    ApiConfig,
    Budget,
    FrameRef,
    LocalFile,
    Manifest,
    Media,
    Take,
    TakeRequest,
)
from runner.emulator import EmulatorSettings
from runner.scheduler.engine import Engine
from runner.scheduler.run_context import EngineSettings, Phase
from runner.scheduler.snapshot import RunSummary
from runner.state import TakePlan, TakeRecord
from runner.wire.payload import fingerprint
from tests.helpers.engine import FAST, fast_emulator, run_engine

Frame = npt.NDArray[np.uint8]


def full_emulator(**changes: Any) -> EmulatorSettings:
    """A fast emulator that draws the pictures it is given (the start frame is frame one)."""
    return fast_emulator(render="full", **changes)


def textured_png(path: Path, seed: int) -> LocalFile:
    """A 1280x720 PNG of big random colour blocks: survives H.264, unlike any other picture."""
    rng = random.Random(seed)
    image = Image.new("RGB", (1280, 720))
    block = 80
    for top in range(0, 720, block):
        for left in range(0, 1280, block):
            colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            image.paste(colour, (left, top, left + block, top + block))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    data = path.read_bytes()
    return LocalFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                     mime="image/png")


@dataclass(frozen=True)
class Shot:
    """A shot of a test manifest; ``start``/``end`` may be a :class:`FrameRef`."""

    id: str
    prompt: str
    takes: int = 1
    start: Media | None = None
    end: Media | None = None
    after: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def from_shot(shot_id: str, frame: str | float = "last") -> FrameRef:
    return FrameRef(shot_id=shot_id, frame=frame)


def manifest_of(root: Path, shots: Sequence[Shot]) -> Manifest:
    """A manifest as expansion would make it: a frame's source shot is also in ``after``."""
    takes: list[Take] = []
    for shot in shots:
        request = TakeRequest(prompt=shot.prompt, multi_prompt=None, duration=3,
                              start_frame=shot.start, end_frame=shot.end,
                              extra=dict(shot.extra))
        after = list(shot.after)
        for media in (shot.start, shot.end):
            if isinstance(media, FrameRef) and media.shot_id not in after:
                after.append(media.shot_id)
        for n in range(1, shot.takes + 1):
            takes.append(Take(shot_id=shot.id, take=n, request=request,
                              fingerprint=fingerprint(request), after=tuple(after)))
    return Manifest(path=root / "shots.yaml", name="chain", output_dir=root / "out",
                    api=ApiConfig(base_url="http://127.0.0.1:1"), budget=Budget(),
                    takes=tuple(takes))


@dataclass
class Ran:
    summary: RunSummary
    plans: dict[str, TakePlan]
    records: dict[str, TakeRecord]


async def run_once(manifest: Manifest, base_url: str,
                   settings: EngineSettings = FAST) -> Ran:
    """Sync and run the whole manifest once, as ``shotrun run`` does."""
    outcome = await run_engine(manifest, base_url, settings=settings)
    return Ran(outcome.summary, outcome.plans, outcome.store_records)


def frames(path: Path) -> list[Frame]:
    """Every frame of a video, decoded to RGB arrays."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def middle(frame: Frame) -> Frame:
    """The band of a frame between the emulator's caption (top) and prompt box (bottom)."""
    height = frame.shape[0]
    return frame[height // 8: height // 2]


def difference(a: Frame, b: Frame) -> float:
    """Mean absolute difference of the middle bands, 0-255."""
    return float(np.abs(middle(a).astype(np.int16) - middle(b).astype(np.int16)).mean())


async def run_until(manifest: Manifest, base_url: str, stop_when: str,
                    settings: EngineSettings = FAST) -> Ran:
    """Like :func:`run_once`, but Ctrl-C (a graceful stop) as soon as take ``stop_when`` is
    at the gateway: it keeps rendering there, for the next run to collect."""

    def stop(engine: Engine, _progress: Any) -> None:
        if engine._stops == 0 and engine.ctx.phases.get(stop_when) is Phase.IN_FLIGHT:
            engine.request_stop()

    outcome = await run_engine(manifest, base_url, settings=settings, on_progress=stop)
    return Ran(outcome.summary, outcome.plans, outcome.store_records)
