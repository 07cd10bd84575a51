"""verify_video, extract_frame and poster_png on real videos made here with PyAV."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from runner.errors import VerifyError
from runner.verify import extract_frame, poster_png, probe, verify_video

FPS = 24


def make_video(path: Path, seconds: float, width: int = 320, height: int = 180, *,
               audio: bool = False, codec: str = "libx264", faststart: bool = False) -> Path:
    """An MP4 whose frame ``i`` is a flat grey of level ``i * 255 // (n - 1)`` (dark to bright).

    ``faststart`` puts the index first, as streamed results usually have it: a cut file then
    still opens, and only decoding finds the missing frames.
    """
    frames = round(seconds * FPS)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream(codec, rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "ultrafast"}
        sound = out.add_stream("aac", rate=48000) if audio else None
        for i in range(frames):
            level = i * 255 // max(1, frames - 1)
            picture = np.full((height, width, 3), level, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            samples = np.zeros((1, 1024), dtype=np.float32)
            for j in range(round(seconds * 48000 / 1024)):
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, j * 1024
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "take-1.mp4", 5)


def test_matching_video_passes(clip: Path) -> None:
    info = verify_video(clip, duration=5, width=320, height=180)
    assert abs(info.duration - 5) < 0.1
    assert (info.width, info.height, info.has_audio, info.codec) == (320, 180, False, "h264")
    assert info.fps == pytest.approx(24)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"duration": 4}, r"take-1\.mp4: duration 5 s, expected 4 s"),
     ({"duration": 5.5}, "expected 5.5 s"),
     ({"width": 1280, "height": 720}, "size 320x180, expected 1280x720"),
     ({"audio": True}, "no audio track")],
    ids=["shorter", "half-second-off", "size", "audio-missing"],
)
def test_mismatches_are_named(clip: Path, kwargs: dict[str, object], message: str) -> None:
    want: dict[str, object] = {"duration": 5, "width": 320, "height": 180, **kwargs}
    with pytest.raises(VerifyError, match=message):
        verify_video(clip, **want)  # type: ignore[arg-type]


def test_tolerance_is_a_setting(clip: Path) -> None:
    verify_video(clip, duration=5.2, width=320, height=180)
    with pytest.raises(VerifyError):
        verify_video(clip, duration=5.2, width=320, height=180, tolerance=0.1)


def test_audio_track_is_found(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", 3, audio=True)
    assert verify_video(path, duration=3, width=320, height=180, audio=True).has_audio
    verify_video(path, duration=3, width=320, height=180, audio=False)  # a silent extra is ok


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"<html>403 Forbidden</html>", "does not open as a video"),
     (b"", "does not open as a video"),
     (bytes(range(256)) * 64, "does not open as a video")],
    ids=["html", "empty", "noise"],
)
def test_garbage_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "take-1.mp4"
    path.write_bytes(content)
    with pytest.raises(VerifyError, match=message):
        verify_video(path, duration=5, width=320, height=180)


def test_truncated_file_is_refused(clip: Path, tmp_path: Path) -> None:
    data = clip.read_bytes()  # index at the end: a cut file does not even open
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VerifyError, match="does not open"):
        verify_video(cut, duration=5, width=320, height=180)


@pytest.mark.parametrize("lost", [0.5, 0.1], ids=["half", "tail"])
def test_file_cut_inside_its_frames_is_refused(tmp_path: Path, lost: float) -> None:
    whole = make_video(tmp_path / "fs.mp4", 5, faststart=True)
    verify_video(whole, duration=5, width=320, height=180)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: round(len(data) * (1 - lost))])
    with pytest.raises(VerifyError, match="cut short"):
        verify_video(cut, duration=5, width=320, height=180)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VerifyError, match="no such file"):
        verify_video(tmp_path / "nope.mp4", duration=5, width=320, height=180)


def _level(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L")).mean())


def test_extract_first_last_and_timed_frames(clip: Path) -> None:
    first, last = extract_frame(clip, "first"), extract_frame(clip, "last")
    middle = extract_frame(clip, 2.5)
    assert first.size == (320, 180) and first.mode == "RGB"
    assert _level(first) < 10 < _level(middle) < 245 < _level(last)
    assert abs(_level(middle) - 128) < 10


def test_extract_frame_refuses_bad_choices(clip: Path) -> None:
    with pytest.raises(ValueError, match="first"):
        extract_frame(clip, "middle")
    with pytest.raises(ValueError, match="non-negative"):
        extract_frame(clip, -1.0)


def test_poster_is_a_small_png(tmp_path: Path) -> None:
    path = make_video(tmp_path / "wide.mp4", 2, width=640, height=360)
    png = poster_png(path)
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (320, 180))


def test_probe_reports_without_expectations(clip: Path) -> None:
    assert probe(clip).height == 180
