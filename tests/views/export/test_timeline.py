"""The timeline's rate and clips of other rates, written through each adapter and read back.

The emulator's videos are all 24 fps, so clips of another rate (a 25 fps render next to 24
fps ones) are built here as measured clips and go through the same build and writers as an
export: the timeline runs at the rate most files have, and a 3 s clip at 25 fps still lasts
3 s (72 frames) on a 24 fps timeline in every format.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.core.model import Take, TakeRequest
from runner.views.export import timeline
from runner.views.export.chosen import Clip, standard_rate, timeline_rate
from runner.views.export.select import Chosen, Missing
from tests.helpers.export import read_back
from tests.helpers.records import record


def clip(index: int, shot: str, frames: int, rate: float) -> Clip:
    take = Take(shot_id=shot, take=1, request=TakeRequest(prompt=f"shot {shot}",
                                                          multi_prompt=None), fingerprint="f")
    chosen = Chosen(index=index, name=f"0{index}-{shot}.mp4", take=take, record=record(1),
                    picked=False, sources=())
    return Clip(chosen, Path(f"/renders/{shot}.mp4"), frames, rate)


def test_probed_rates_are_rounded_to_what_an_nle_calls_them() -> None:
    assert standard_rate(24.000000001) == 24.0
    assert standard_rate(23.976023976) == 24000 / 1001
    assert standard_rate(29.97) == 30000 / 1001
    assert standard_rate(12.5) == 12.5
    assert standard_rate(None) is None and standard_rate(0.0) is None


def test_the_timeline_runs_at_the_rate_most_clips_have() -> None:
    assert timeline_rate([]) == 24.0
    assert timeline_rate([clip(1, "a", 75, 25.0), clip(2, "b", 72, 24.0),
                          clip(3, "c", 72, 24.0)]) == 24.0
    assert timeline_rate([clip(1, "a", 75, 25.0), clip(2, "b", 72, 24.0)]) == 25.0  # a tie


@pytest.mark.parametrize(("adapter", "suffix"), [
    ("otio_json", "otio"), ("cmx_3600", "edl"), ("fcp_xml", "xml")])
def test_a_clip_of_another_rate_keeps_its_length_in_every_format(
        tmp_path: Path, adapter: str, suffix: str) -> None:
    shots = [clip(1, "a", 72, 24.0), clip(2, "b", 75, 25.0), Missing(3, "c", 2.0),
             clip(4, "d", 48, 24.0)]
    built = timeline.build("mixed", shots, 24.0, tmp_path)
    path = tmp_path / f"edit.{suffix}"
    path.write_text(timeline.write(built, adapter), encoding="utf-8")
    _read, clips = read_back(path)
    start = 3600 * 24
    assert [(c.name, c.record_in - start, c.frames) for c in clips] == [
        ("01-a.mp4", 0, 72), ("02-b.mp4", 72, 72), ("04-d.mp4", 192, 48)]
    # Writing did not change the timeline (an adapter may edit what it is handed).
    assert timeline.clip_places(built) == [
        ("01-a.mp4", start, start + 72), ("02-b.mp4", start + 72, start + 144),
        ("04-d.mp4", start + 192, start + 240)]
