"""verify_video, extract_frame and poster_png on real videos made here with PyAV."""

from __future__ import annotations

import io
import random
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from runner.core.errors import VerifyError
from runner.emulator.video import plain_spec, render
from runner.media.verify import (
    VideoInfo,
    extract_frame,
    orientation,
    poster_png,
    probe,
    verify_video,
)

FPS = 24


def make_video(path: Path, seconds: float, width: int = 320, height: int = 180, *,
               audio: bool = False, codec: str = "libx264", faststart: bool = False,
               keyint: int | None = None) -> Path:
    """An MP4 whose frame ``i`` is a flat grey of level ``i * 255 // (n - 1)`` (dark to bright).

    ``faststart`` puts the index first, as streamed results usually have it: a cut file then
    still opens, and only its packets show what is missing. ``keyint``: a keyframe every so
    many frames (x264's default of 250 gives these short clips a single one).
    """
    frames = round(seconds * FPS)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream(codec, rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "ultrafast", **({"g": str(keyint)} if keyint else {})}
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


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 720), (160, 90), (400, 180), (330, 180)],
    ids=["nominal-720p", "an-eighth", "wider-landscape", "a-little-wider"],
)
def test_observing_the_size_accepts_any_landscape_for_a_landscape_request(
        clip: Path, width: int, height: int) -> None:
    info = verify_video(clip, duration=5, width=width, height=height, size="observe")
    assert (info.width, info.height) == (320, 180)  # what the file is, for the record


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [(720, 1280, "size 320x180 is landscape, expected portrait like 720x1280"),
     (720, 720, "size 320x180 is landscape, expected square like 720x720")],
    ids=["portrait-asked", "square-asked"],
)
def test_another_orientation_fails_whatever_the_size_rule(
        clip: Path, width: int, height: int, message: str) -> None:
    for rule in ("observe", "strict"):
        with pytest.raises(VerifyError, match=message):
            verify_video(clip, duration=5, width=width, height=height, size=rule)


def test_square_is_within_a_few_percent(tmp_path: Path) -> None:
    nearly = make_video(tmp_path / "nearly.mp4", 3, width=242, height=240)
    verify_video(nearly, duration=3, width=720, height=720, size="observe")
    assert orientation(242, 240) == "square" and orientation(260, 240) == "landscape"
    assert orientation(240, 260) == "portrait"
    with pytest.raises(VerifyError, match="is square, expected landscape"):
        verify_video(nearly, duration=3, width=1280, height=720, size="observe")


def test_probe_records_the_audio_codec(tmp_path: Path) -> None:
    with_sound = make_video(tmp_path / "a.mp4", 3, audio=True)
    clip = make_video(tmp_path / "b.mp4", 3)
    assert verify_video(with_sound, duration=3, width=320, height=180).audio_codec == "aac"
    assert verify_video(clip, duration=3, width=320, height=180).audio_codec is None


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


# Cut and damaged files. The emulator's clip (index at the end) and the same clip remuxed with
# its index first (as streamed results come) are cut at several points; the cases after them
# are each caught by one check alone, so each fails if its check breaks: the end of the
# packets against the index, a packet read short, the top-level boxes, the keyframes taken
# from the index, and the decoder told to fail on damage it would otherwise conceal.

CUTS = {"10%": lambda n: n // 10, "50%": lambda n: n // 2, "90%": lambda n: n * 9 // 10,
        "99%": lambda n: n * 99 // 100, "last-100-bytes": lambda n: n - 100,
        "last-byte": lambda n: n - 1}


@pytest.fixture(scope="module")
def emulator_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the emulator serves for a 3 s 720p take with sound (its index at the end)."""
    path = tmp_path_factory.mktemp("emu") / "take-1.mp4"
    path.write_bytes(render(plain_spec(1280, 720, [3], True, "verify")))
    return path


@pytest.fixture(scope="module")
def streamed_clip(emulator_clip: Path) -> Path:
    """The emulator's clip remuxed with its index first (``faststart``)."""
    path = emulator_clip.with_name("streamed.mp4")
    with av.open(str(emulator_clip)) as src, \
            av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.size:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return path


def _cut(path: Path, keep: int, name: str = "take-1.mp4") -> Path:
    cut = path.parent / "cut" / name
    cut.parent.mkdir(exist_ok=True)
    cut.write_bytes(path.read_bytes()[:keep])
    return cut


def _boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """An MP4's top-level boxes: type -> (offset, length)."""
    found, offset = {}, 0
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        found[kind] = (offset, length)
        offset += length
    return found


def _video_packets(path: Path) -> list[tuple[int, int, bool]]:
    """(position, size, keyframe) of every video packet, as libav reads an intact file."""
    with av.open(str(path)) as container:
        return [(p.pos or 0, p.size, p.is_keyframe)
                for p in container.demux(container.streams.video[0]) if p.size]


def _verify_720p(path: Path) -> VideoInfo:
    return verify_video(path, duration=3, width=1280, height=720, audio=True)


def test_emulator_clips_pass_whole(emulator_clip: Path, streamed_clip: Path) -> None:
    for path in (emulator_clip, streamed_clip):
        info = _verify_720p(path)
        assert (info.cut, info.last_frame_end, info.missing_tail) == ("", 3.0, 0.0)


@pytest.mark.parametrize("where", ["10%", "50%", "90%", "99%"])
def test_index_last_clip_cut_does_not_open(emulator_clip: Path, where: str) -> None:
    cut = _cut(emulator_clip, CUTS[where](emulator_clip.stat().st_size))
    with pytest.raises(VerifyError, match=r"does not open as a video \(its m(dat|oov) box "
                                          r"needs \d+ bytes, the file has \d+: the file is cut"):
        _verify_720p(cut)


@pytest.mark.parametrize("where", ["last-100-bytes", "last-byte"])
def test_index_last_clip_cut_inside_its_index(emulator_clip: Path, where: str) -> None:
    """libav still opens these (the last byte: every packet whole): only the boxes tell."""
    size = emulator_clip.stat().st_size
    cut = _cut(emulator_clip, CUTS[where](size))
    with pytest.raises(VerifyError, match="the file is cut short"):
        _verify_720p(cut)
    if where == "last-byte":
        assert probe(cut).cut == f"its moov box needs {size} bytes, the file has {size - 1}"


@pytest.mark.parametrize("where", ["10%", "50%", "90%", "99%"])
def test_streamed_clip_cut_inside_its_frames(streamed_clip: Path, where: str) -> None:
    cut = _cut(streamed_clip, CUTS[where](streamed_clip.stat().st_size))
    with pytest.raises(VerifyError, match=r"frames stop at [\d.]+ s of 3 s \(the file is cut"):
        _verify_720p(cut)


@pytest.mark.parametrize("where", ["last-100-bytes", "last-byte"])
def test_streamed_clip_cut_inside_its_last_sound(streamed_clip: Path, where: str) -> None:
    """Every video packet is whole: the mdat box running past the end is the only sign."""
    size = streamed_clip.stat().st_size
    cut = _cut(streamed_clip, CUTS[where](size))
    assert probe(cut).last_frame_end == 3.0
    with pytest.raises(VerifyError, match=rf"take-1\.mp4: its mdat box needs {size} bytes, "
                                          rf"the file has {CUTS[where](size)} \(the file is cut"):
        _verify_720p(cut)


@pytest.fixture
def open_ended(tmp_path: Path) -> Path:
    """Index first, and an mdat box of size 0 ("to the end of the file"): the boxes cannot
    tell a cut, so only the packets can."""
    path = make_video(tmp_path / "open.mp4", 3, faststart=True)
    data = bytearray(path.read_bytes())
    offset, _ = _boxes(bytes(data))[b"mdat"]
    data[offset : offset + 4] = bytes(4)
    path.write_bytes(data)
    verify_video(path, duration=3, width=320, height=180)
    return path


def test_last_packet_read_short_is_a_cut(open_ended: Path) -> None:
    """One byte short: 3 frames' worth of missing tail would be tolerated, a short read not."""
    cut = _cut(open_ended, open_ended.stat().st_size - 1)
    assert "video packet at 2.96 s is short" in probe(cut).cut
    with pytest.raises(VerifyError, match=r"frames stop at 2\.96 s of 3 s \(the file is cut"):
        verify_video(cut, duration=3, width=320, height=180)


def test_packets_ending_early_is_a_cut(open_ended: Path) -> None:
    """Cut between packets: nothing reads short, but the frames end before the index does."""
    cut = _cut(open_ended, _video_packets(open_ended)[-4][0])
    info = probe(cut)
    assert info.cut == "" and info.last_frame_end == pytest.approx(68 / 24)
    with pytest.raises(VerifyError, match=r"frames stop at 2\.83 s of 3 s \(the file is cut"):
        verify_video(cut, duration=3, width=320, height=180)


def test_boxes_with_64_bit_sizes_are_followed(tmp_path: Path) -> None:
    """free(8) + mdat becomes one mdat with a 64-bit size: same media offsets, a valid file."""
    path = make_video(tmp_path / "large.mp4", 3)
    data = bytearray(path.read_bytes())
    boxes = _boxes(bytes(data))
    (free, free_length), (_, mdat_length) = boxes[b"free"], boxes[b"mdat"]
    assert free_length == 8
    data[free : free + 16] = struct.pack(">I4sQ", 1, b"mdat", mdat_length + 8)
    path.write_bytes(data)
    verify_video(path, duration=3, width=320, height=180)
    with pytest.raises(VerifyError, match="its moov box needs"):
        verify_video(_cut(path, len(data) - 1), duration=3, width=320, height=180)


def test_a_stray_byte_after_the_boxes_is_tolerated(streamed_clip: Path) -> None:
    path = _cut(streamed_clip, streamed_clip.stat().st_size, "stray.mp4")
    path.write_bytes(path.read_bytes() + b"\n")
    _verify_720p(path)


def test_matroska_is_checked_by_its_packets(tmp_path: Path) -> None:
    path = make_video(tmp_path / "take.mkv", 3, audio=True)
    verify_video(path, duration=3, width=320, height=180, audio=True)
    with pytest.raises(VerifyError, match=r"frames stop at [\d.]+ s of 3\.03 s \(the file is cut"):
        verify_video(_cut(path, path.stat().st_size // 2, "take.mkv"), duration=3, width=320,
                     height=180)


def _damage(path: Path, packet: tuple[int, int, bool], start: float, fill: str) -> Path:
    """``path`` with ``packet``'s bytes from ``start`` (a share of its size) on replaced."""
    pos, size, _ = packet
    data = bytearray(path.read_bytes())
    first = pos + int(size * start)
    data[first : pos + size] = (bytes(pos + size - first) if fill == "zeros"
                                else random.Random(7).randbytes(pos + size - first))
    damaged = path.parent / "damaged" / path.name
    damaged.parent.mkdir(exist_ok=True)
    damaged.write_bytes(data)
    return damaged


@pytest.fixture
def three_keyframes(tmp_path: Path) -> tuple[Path, list[tuple[int, int, bool]]]:
    path = make_video(tmp_path / "take-1.mp4", 3, keyint=24, faststart=True)
    keys = [p for p in _video_packets(path) if p[2]]
    assert len(keys) == 3
    verify_video(path, duration=3, width=320, height=180)
    return path, keys


def test_last_keyframe_of_zeros_fails(
    three_keyframes: tuple[Path, list[tuple[int, int, bool]]],
) -> None:
    """libav then no longer flags that packet a keyframe: the index still does, and it is the
    one decoded (the middle keyframe, intact, would pass)."""
    path, keys = three_keyframes
    with pytest.raises(VerifyError, match="the last frames do not decode"):
        verify_video(_damage(path, keys[-1], 0, "zeros"), duration=3, width=320, height=180)


def test_last_keyframe_with_a_garbage_tail_fails(
    three_keyframes: tuple[Path, list[tuple[int, int, bool]]],
) -> None:
    """Garbage in the back of the slice data: a decoder would conceal it unless told not to."""
    path, keys = three_keyframes
    with pytest.raises(VerifyError, match="the last frames do not decode"):
        verify_video(_damage(path, keys[-1], 0.7, "noise"), duration=3, width=320, height=180)


def test_first_keyframe_of_garbage_fails(
    three_keyframes: tuple[Path, list[tuple[int, int, bool]]],
) -> None:
    path, keys = three_keyframes
    with pytest.raises(VerifyError, match="does not decode"):
        verify_video(_damage(path, keys[0], 0, "noise"), duration=3, width=320, height=180)


def test_single_keyframe_of_garbage_fails(streamed_clip: Path) -> None:
    key = _video_packets(streamed_clip)[0]
    with pytest.raises(VerifyError, match="does not decode"):
        _verify_720p(_damage(streamed_clip, key, 0.5, "noise"))


# ---------------------------------------------------------------- decoders kept between files
def test_a_kept_decoder_carries_nothing_from_a_damaged_file(
    three_keyframes: tuple[Path, list[tuple[int, int, bool]]],
) -> None:
    """The decoder kept after the good file meets garbage, is dropped, and the good file (and
    its damaged twin again) are judged afresh: no error and no picture crosses files."""
    path, keys = three_keyframes
    damaged = _damage(path, keys[-1], 0.7, "noise")
    for _ in range(2):
        with pytest.raises(VerifyError, match="the last frames do not decode"):
            verify_video(damaged, duration=3, width=320, height=180)
        assert verify_video(path, duration=3, width=320, height=180).width == 320


def test_files_of_different_set_ups_alternate(tmp_path: Path) -> None:
    """Each size has its own extradata and so its own kept decoder: a decoder kept for one
    would report the other's size, or fail on its packets."""
    small = make_video(tmp_path / "small.mp4", 1, 320, 180)
    large = make_video(tmp_path / "large.mp4", 1, 640, 360, faststart=True)
    for _ in range(3):
        assert (probe(small).width, probe(small).height) == (320, 180)
        assert (probe(large).width, probe(large).height) == (640, 360)
    with pytest.raises(VerifyError, match="size 640x360, expected 320x180"):
        verify_video(large, duration=1, width=320, height=180)


def test_threads_verify_side_by_side(clip: Path, tmp_path: Path) -> None:
    """Decoders are kept per thread (a PyAV context is not thread-safe): four threads checking
    files at once all get the right answers."""
    from concurrent.futures import ThreadPoolExecutor

    other = make_video(tmp_path / "other.mp4", 2, 640, 360)
    jobs = [(clip, 5, 320, 180), (other, 2, 640, 360)] * 20
    with ThreadPoolExecutor(4) as pool:
        infos = list(pool.map(
            lambda job: verify_video(job[0], duration=job[1], width=job[2], height=job[3]),
            jobs,
        ))
    assert [(info.width, info.height) for info in infos] == [job[2:] for job in jobs]
