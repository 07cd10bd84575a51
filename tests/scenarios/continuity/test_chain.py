"""Issue 8 on the real emulator: a chain of shots, each starting where the previous one ended."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from runner.emulator import run_emulator
from runner.media.verify import extract_frame
from runner.state import StateStore, TakeStatus, continuity, store_path_for
from tests.helpers.continuity import (
    Shot,
    difference,
    frames,
    from_shot,
    full_emulator,
    manifest_of,
    run_once,
    textured_png,
)
from tests.helpers.engine import FAST

TOLERANCE = 6.0  # mean absolute difference allowed for H.264 (two generations of it)
DIFFERENT = 30.0  # what two unrelated pictures differ by at least


def chain(root: Path, first_prompt: str = "a lighthouse at dawn") -> list[Shot]:
    start = textured_png(root / "assets" / "start.png", seed=1)
    end = textured_png(root / "assets" / "end.png", seed=2)
    return [
        Shot("s01", first_prompt, start=start, end=end),
        Shot("s02", "the keeper climbs the stairs", start=from_shot("s01")),
        Shot("s03", "the lamp turns on", start=from_shot("s02")),
    ]


async def test_a_three_shot_chain_renders_in_order_each_from_the_last_frame(
        tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, chain(tmp_path))
    async with run_emulator(full_emulator()) as emulator:
        ran = await run_once(manifest, emulator.base_url)
        stats = emulator.stats()
    assert ran.summary.all_done and ran.summary.done == 3, ran.summary
    assert stats["creation_requests"] == 3
    s01, s02, s03 = (ran.records[f"s0{n}/take-1"] for n in (1, 2, 3))
    # In order: a dependent is submitted only after its source was downloaded and verified.
    assert s01.downloaded_at is not None and s02.submitted_at is not None
    assert s01.downloaded_at <= s02.submitted_at
    assert s02.downloaded_at is not None and s03.submitted_at is not None
    assert s02.downloaded_at <= s03.submitted_at
    one, two, three = (frames(Path(r.output_path or "")) for r in (s01, s02, s03))
    # s01 crossfades from its start picture to its end picture: its first and last differ.
    assert difference(one[0], one[-1]) > DIFFERENT
    # Each start frame is the previous output's last frame, and not merely any frame of it.
    assert difference(two[0], one[-1]) < TOLERANCE
    assert difference(two[0], one[0]) > DIFFERENT
    assert difference(three[0], two[-1]) < TOLERANCE
    assert difference(three[0], one[0]) > DIFFERENT
    # The frame was cut exactly: a full-resolution PNG equal to the decoded last frame.
    pngs = sorted((tmp_path / "out" / ".shotrun" / "frames").glob("*.png"))
    assert len(pngs) == 2
    cut = {np.asarray(Image.open(p).convert("RGB")).tobytes() for p in pngs}
    assert np.asarray(extract_frame(Path(s01.output_path or ""), "last")).tobytes() in cut
    assert all(Image.open(p).size == (1280, 720) for p in pngs)
    # Each frame was uploaded once (3 takes: the two local pictures and the two frames).
    assert stats["uploads"] == 4
    # The dependents remember the source output they were cut from.
    with StateStore.open_readonly(store_path_for(manifest)) as store:
        used = continuity.frame_hashes(store)
    assert used == {"s02/take-1": {"s01": s01.sha256}, "s03/take-1": {"s02": s02.sha256}}


async def test_rerendering_the_first_shot_rerenders_the_chain(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, chain(tmp_path))
    async with run_emulator(full_emulator()) as emulator:
        first = await run_once(manifest, emulator.base_url)
        again = await run_once(manifest, emulator.base_url)
        assert {p.action for p in again.plans.values()} == {"skip"}
        uploads = emulator.stats()["uploads"]
        edited = manifest_of(tmp_path, chain(tmp_path, "a lighthouse at dusk"))
        third = await run_once(edited, emulator.base_url)
        stats = emulator.stats()
    assert first.summary.all_done and third.summary.all_done
    reasons = {key: (plan.action, plan.reason) for key, plan in third.plans.items()}
    assert reasons == {"s01/take-1": ("submit", "prompt changed"),
                       "s02/take-1": ("submit", "source changed"),
                       "s03/take-1": ("submit", "source changed")}
    assert stats["creation_requests"] == 6
    assert stats["uploads"] == uploads + 2  # only the two new frames
    one = frames(Path(third.records["s01/take-1"].output_path or ""))
    two = frames(Path(third.records["s02/take-1"].output_path or ""))
    assert difference(two[0], one[-1]) < TOLERANCE
    for n in (1, 2, 3):
        assert third.records[f"s0{n}/take-1"].sha256 != first.records[f"s0{n}/take-1"].sha256


async def test_a_failed_source_fails_its_dependents_with_a_reason(tmp_path: Path) -> None:
    shots = chain(tmp_path)
    shots[0] = replace(shots[0], extra={"duration": 99})  # the gateway refuses it: 400
    manifest = manifest_of(tmp_path, shots)
    async with run_emulator(full_emulator()) as emulator:
        ran = await run_once(manifest, emulator.base_url)
    failed = {f.key: f for f in ran.summary.failed}
    assert set(failed) == {"s01/take-1", "s02/take-1", "s03/take-1"}
    assert failed["s01/take-1"].kind == "permanent"
    for key, source in (("s02/take-1", "s01"), ("s03/take-1", "s02")):
        assert failed[key].kind == "dependency"
        assert f"shot {source}" in failed[key].message
        record = ran.records[key]
        assert record.status is TakeStatus.FAILED and record.failure_kind == "dependency"
        assert record.attempts == 0 and record.task_id is None


async def test_independent_shots_run_beside_a_waiting_chain(tmp_path: Path) -> None:
    shots = [*chain(tmp_path), *(Shot(f"x{n}", f"an unrelated shot {n}") for n in range(4))]
    manifest = manifest_of(tmp_path, shots)
    settings = replace(FAST, concurrency=2)
    async with run_emulator(full_emulator()) as emulator:
        ran = await run_once(manifest, emulator.base_url, settings)
        stats = emulator.stats()
    assert ran.summary.all_done and ran.summary.done == 7
    assert stats["max_in_flight"] == 2
    # While s02 waited for s01, the free slot went to independent shots.
    s01, s02 = ran.records["s01/take-1"], ran.records["s02/take-1"]
    assert s01.submitted_at is not None and s02.submitted_at is not None
    beside = [r for key, r in ran.records.items() if key.startswith("x")
              and r.submitted_at is not None and s01.submitted_at <= r.submitted_at
              <= s02.submitted_at]
    assert beside


async def test_a_frame_used_by_several_shots_is_cut_and_uploaded_once(tmp_path: Path) -> None:
    shots = [Shot("s01", "a lighthouse at dawn"),
             *(Shot(f"s02{n}", f"a reaction shot {n}", start=from_shot("s01")) for n in "abc")]
    manifest = manifest_of(tmp_path, shots)
    async with run_emulator(full_emulator()) as emulator:
        ran = await run_once(manifest, emulator.base_url)
        stats = emulator.stats()
    assert ran.summary.all_done and ran.summary.done == 4
    assert stats["uploads"] == 1
    assert len(list((tmp_path / "out" / ".shotrun" / "frames").glob("*.png"))) == 1
