"""Shared helpers for the engine's behaviour tests: tiny manifests, a fast emulator, a runner.

Everything runs over loopback against the real emulator with tiny queue and processing
times; nothing is mocked. Waiting is done on conditions (store rows, emulator counters),
never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from runner.core.model import ApiConfig, Budget, LocalFile, Manifest, Take, TakeRequest
from runner.emulator import EmulatorSettings
from runner.providers.gateway.client import GatewayClient
from runner.scheduler.backoff import BackoffPolicy
from runner.scheduler.engine import Engine
from runner.scheduler.polling import PollPolicy
from runner.scheduler.run_context import EngineSettings
from runner.scheduler.snapshot import RunProgress, RunSummary
from runner.state import StateStore, store_path_for
from runner.wire.payload import build_payload, fingerprint, fingerprint_resolver

KEY = "sk-test-engine-0123456789"

FAST = EngineSettings(
    concurrency=4, submit_rate=0, downloads=3, retries=2,
    backoff=BackoffPolicy(base=0.01, cap=0.05, retry_after_cap=0.05),
    polling=PollPolicy(min_interval=0.01, max_interval=0.05, default_estimate=0.05),
)


def fast_emulator(**changes: Any) -> EmulatorSettings:
    """An emulator that renders 720p clips in a blink, checking :data:`KEY`."""
    base = {"queue_time": 0.01, "processing_time": 0.03, "render": "cached", "api_key": KEY,
            "retry_after": 0.01, "seed": 7}
    base.update(changes)
    return EmulatorSettings(**base)


@dataclass(frozen=True)
class Shot:
    """A shot for :func:`make_manifest`."""

    id: str
    prompt: str
    takes: int = 1
    tags: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    images: tuple[Any, ...] = ()
    duration: int = 3
    extra: Mapping[str, Any] = field(default_factory=dict)


def make_take(shot: Shot, n: int) -> Take:
    request = TakeRequest(prompt=shot.prompt, multi_prompt=None, resolution="720p",
                          aspect_ratio="16:9", duration=shot.duration, images=shot.images,
                          extra=dict(shot.extra))
    return Take(shot_id=shot.id, take=n, request=request, fingerprint=fingerprint(request),
                tags=shot.tags, after=shot.after)


def make_manifest(root: Path, shots: Sequence[Shot], *, max_credits: float | None = None,
                  base_url: str = "http://127.0.0.1:1") -> Manifest:
    takes = tuple(make_take(shot, n) for shot in shots for n in range(1, shot.takes + 1))
    return Manifest(path=root / "shots.yaml", name="t", output_dir=root / "out",
                    api=ApiConfig(base_url=base_url), budget=Budget(max_credits=max_credits),
                    takes=takes)


def local_png(path: Path, colour: tuple[int, int, int] = (200, 80, 40)) -> LocalFile:
    """A small real PNG (the file service checks content), as the manifest would give it."""
    import hashlib

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (320, 320), colour).save(path, format="PNG")
    data = path.read_bytes()
    return LocalFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                     mime="image/png")


@dataclass
class Outcome:
    summary: RunSummary
    store_records: dict[str, Any]
    progress: list[RunProgress]
    plans: dict[str, Any] = field(default_factory=dict)  # TakePlan per key, as sync made them


async def run_engine(manifest: Manifest, base_url: str, *, settings: EngineSettings = FAST,
                     key: str = KEY, retry_failed: bool = False, ambiguous: str = "resubmit",
                     on_progress: Callable[[Engine, RunProgress], None] | None = None,
                     takes: Sequence[Take] | None = None) -> Outcome:
    """Sync the store and run the engine once against ``base_url``."""
    chosen = list(takes if takes is not None else manifest.takes)
    store = StateStore.open(store_path_for(manifest))
    seen: list[RunProgress] = []
    try:
        payloads = {t.key: build_payload(t.request, fingerprint_resolver) for t in chosen}
        plans = store.sync(chosen, payloads, retry_failed=retry_failed, ambiguous=ambiguous)
        client = GatewayClient(base_url, base_url, key)
        engine: Engine | None = None

        def observe(progress: RunProgress) -> None:
            seen.append(progress)
            if on_progress is not None and engine is not None:
                on_progress(engine, progress)

        try:
            engine = Engine(manifest, store, client, plans, settings, observer=observe,
                            upload_namespace=base_url)
            summary = await engine.run()
        finally:
            await client.close()
        records = {r.key: r for r in store.records()}
    finally:
        store.close()
    return Outcome(summary, records, seen, {plan.key: plan for plan in plans})


def decode(path: Path) -> tuple[float, int, int]:
    """(duration, width, height) of a video, by decoding every frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate or 0)
        return frames / rate, stream.codec_context.width, stream.codec_context.height


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Yield to the loop until ``predicate()`` holds (a condition, not a fixed delay)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def store_totals(manifest: Manifest) -> dict[str, Any]:
    """The store's totals (ambiguous submissions, credits...) read after a run."""
    store = StateStore.open_readonly(store_path_for(manifest))
    try:
        return store.totals()
    finally:
        store.close()
