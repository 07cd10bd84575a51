"""Each clip's length and rate come from the facts the run recorded when it verified the file.

The run measured every output when it verified it and recorded the facts with the take
(``takes.video``); export checks that the file is still those bytes (SHA-256) and places it
from the facts, without opening it with PyAV again. A take recorded without them (an older
store, or an older shotrun that did not record ``video_duration``) is measured from its file.

To tell which was read, the store is edited after the run: facts the file cannot have (25 fps,
2 s, where the emulator rendered 3 s at 24 fps), and a file that is no video at all (its hash
recorded, so that the integrity check still passes): only a read of the store places it; only
a read of the file refuses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from runner import cli
from runner.core.model import Take, TakeRequest, VerifyPolicy
from runner.media.observed import OutputExpectations
from runner.state import StateStore, store_path_for
from runner.views.export.chosen import measure, standard_rate
from runner.views.export.select import Chosen
from tests.helpers.export import RATE, frame_count
from tests.helpers.records import record

NOT_A_VIDEO = b"these bytes are no video: PyAV would refuse to open them\n"


def _facts(manifest: Path, key: str) -> dict[str, Any]:
    with StateStore.open_readonly(store_path_for(manifest.parent / "out")) as store:
        facts = store.record(key).video
    assert facts is not None
    return facts


def _record(manifest: Path, key: str, **columns: Any) -> None:
    """Set columns of one take's row, as an older shotrun (or a test) left them."""
    names = ", ".join(f"{name} = ?" for name in columns)
    with closing(sqlite3.connect(store_path_for(manifest.parent / "out"))) as conn, conn:
        conn.execute(f"UPDATE takes SET {names} WHERE key = ?", (*columns.values(), key))


def _not_a_video(manifest: Path, key: str) -> Path:
    """Replace the take's output with bytes that are no video, and record their hash."""
    output = manifest.parent / "out" / f"{key}.mp4"
    output.write_bytes(NOT_A_VIDEO)
    _record(manifest, key, sha256=hashlib.sha256(NOT_A_VIDEO).hexdigest(),
            size=len(NOT_A_VIDEO))
    return output


def _clips(cut: Path) -> dict[str, tuple[float, float]]:
    """Each clip of ``edit.otio``: (its length in its own frames, its rate)."""
    timeline = otio.adapters.read_from_file(str(cut / "edit.otio"))
    return {str(clip.name): (clip.source_range.duration.value, clip.source_range.duration.rate)
            for clip in timeline.find_clips()}


def test_the_run_records_each_takes_rate_and_length_as_its_file_has_them(
        rendered: Path) -> None:
    for key in ("s01/take-1", "s02/take-1"):
        facts = _facts(rendered, key)
        decoded = frame_count(rendered.parent / "out" / f"{key}.mp4")
        assert facts["fps"] == RATE and round(facts["video_duration"] * RATE) == decoded == 72


def test_export_places_a_clip_from_its_recorded_facts_without_opening_its_file(
        rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    facts = _facts(rendered, "s01/take-1")
    _record(rendered, "s01/take-1",
            video=json.dumps({**facts, "fps": 25.0, "video_duration": 2.0}))
    _not_a_video(rendered, "s01/take-1")
    cut = rendered.parent / "cut"
    capsys.readouterr()
    assert cli.main(["export", str(rendered), str(cut), "--format", "otio"]) == 0, \
        capsys.readouterr().err
    # 2 s at 25 fps: what the store says, not the file (no video) nor the request (3 s).
    assert _clips(cut) == {"01-s01.mp4": (50, 25), "02-s02.mp4": (72, 24)}
    assert (cut / "01-s01.mp4").read_bytes() == NOT_A_VIDEO


@pytest.mark.parametrize("change", [
    "no facts",  # a store from before schema 3
    "no video_duration",  # recorded by a shotrun that did not record it yet
    "no fps",  # a file whose rate was not known
])
def test_without_a_recorded_length_export_reads_the_file(
        rendered: Path, capsys: pytest.CaptureFixture[str], change: str) -> None:
    facts = _facts(rendered, "s01/take-1")
    if change == "no facts":
        video = None
    elif change == "no video_duration":
        video = json.dumps({k: v for k, v in facts.items() if k != "video_duration"})
    else:
        video = json.dumps({**facts, "fps": None, "video_duration": 2.0})
    _record(rendered, "s01/take-1", video=video)
    cut = rendered.parent / "cut"
    assert cli.main(["export", str(rendered), str(cut), "--format", "otio"]) == 0
    output = rendered.parent / "out" / "s01" / "take-1.mp4"
    assert _clips(cut)["01-s01.mp4"] == (frame_count(output), 24) == (72, 24)
    # Read from the file indeed: one that is no video is refused, naming it.
    _not_a_video(rendered, "s01/take-1")
    capsys.readouterr()
    assert cli.main(["export", str(rendered), str(cut), "--format", "otio"]) == 2
    assert "s01: take-1.mp4: does not open as a video" in capsys.readouterr().err


def _picture_with_longer_sound(path: Path, frames: int, sound_seconds: float) -> None:
    """An MP4 whose video stream is ``frames`` frames at 24 fps and whose sound runs on."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = container.add_stream("aac", rate=48000)
        audio.layout = "mono"
        picture = np.zeros((180, 320, 3), np.uint8)
        for pts in range(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = pts
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = np.zeros((1, round(48000 * sound_seconds)), np.float32)
        for start in range(0, samples.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(samples[:, start:start + 1024], format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))


def test_the_recorded_length_is_the_pictures_not_the_sounds(tmp_path: Path) -> None:
    """A 3 s picture with 3.2 s of sound (the file lasts 3.2 s) is 72 frames, not 77."""
    path = tmp_path / "take-1.mp4"
    _picture_with_longer_sound(path, 72, 3.2)
    request = TakeRequest(prompt="a lighthouse at dawn", multi_prompt=None, duration=3)
    _info, facts = OutputExpectations(VerifyPolicy()).check(path, request)
    assert facts["duration"] == pytest.approx(3.2, abs=0.03)  # the file's: its sound's end
    assert facts["video_duration"] == 3.0
    take = Take(shot_id="s01", take=1, request=request, fingerprint="f")
    done = dataclasses.replace(record(1), output_path=str(path), video_json=json.dumps(facts),
                               sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    clip = measure(Chosen(index=1, name="01-s01.mp4", take=take, record=done, picked=False,
                          sources=()))
    assert (clip.frames, clip.rate) == (frame_count(path), 24.0) == (72, 24.0)


@pytest.mark.parametrize("rate", [24, 25, 30, 50, 60, 24000 / 1001, 30000 / 1001,
                                  60000 / 1001])
def test_the_recorded_rate_to_three_decimals_is_the_rate_read_from_the_file(
        rate: float) -> None:
    assert standard_rate(round(rate, 3)) == standard_rate(rate)
