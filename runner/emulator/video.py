"""Synthesis of the emulator's result videos: real, playable H.264 MP4 files, made fast.

The runner verifies outputs by decoding them (duration, size, frame rate, audio), and its
continuity features read frames back, so the emulator must produce genuine video whose
content follows the request: the start/end frames and reference images it points at, the
prompt text, and one visible cut per ``multi_prompt`` segment.

Speed matters more than beauty (tests and benchmarks render hundreds of clips on a small
machine), so a clip is built from a handful of distinct pictures: each segment's picture is
composed once with Pillow, converted once to YUV 4:2:0 planes with numpy, and then only a
thin progress bar changes from frame to frame. libx264's ``ultrafast`` preset encodes such
near-static frames in a few milliseconds each.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont, ImageOps

FPS = 24
AUDIO_RATE = 48_000
AUDIO_FRAME = 1024  # samples per AAC frame
_BAR_STEPS_PER_SECOND = 2  # how often the progress bar visibly moves
_CROSSFADE_FRAMES = 6  # start -> end picture blend of a single-segment clip

Planes = npt.NDArray[np.uint8]  # a yuv420p picture as one (h * 3 / 2, w) array


@dataclass(frozen=True, slots=True)
class Shot:
    """One segment of the clip: its prompt, its length in seconds, and its picture source."""

    prompt: str
    seconds: int
    picture: bytes | None = None  # encoded image (any Pillow format); None: a plain colour


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """Everything that decides the bytes of a clip."""

    width: int
    height: int
    shots: tuple[Shot, ...]
    audio: bool = False
    end_picture: bytes | None = None  # blended in at the very end of the last segment
    label: str = ""  # drawn small in a corner (the task id), so clips are told apart

    @property
    def duration(self) -> int:
        """Total seconds of the clip."""
        return sum(shot.seconds for shot in self.shots)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour(seed: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    # Mid-range colours so that white text stays readable and cuts stay visible.
    return (48 + digest[0] % 160, 48 + digest[1] % 160, 48 + digest[2] % 160)


def _open_picture(data: bytes | None, size: tuple[int, int]) -> Image.Image | None:
    """``data`` decoded and cropped to cover ``size``; None when it is not a readable image."""
    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return ImageOps.fit(rgb, size, method=Image.Resampling.BILINEAR)


def _wrap(text: str, width_chars: int, max_lines: int) -> list[str]:
    words = " ".join(text.split()).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if len(candidate) <= width_chars or not current:
            current = candidate[: width_chars * 2]
        else:
            lines.append(current)
            current = word
        if len(lines) == max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
    if len(lines) == max_lines and sum(len(line) for line in lines) < len(text):
        lines[-1] = lines[-1][: max(0, width_chars - 1)] + "…"
    return lines


def compose(
    width: int, height: int, shot: Shot, index: int, count: int, label: str,
    tint: bool = False,
) -> Image.Image:
    """The picture of one segment: its image (or a colour), the prompt, a segment label.

    ``tint`` washes the image with the segment's own colour: a segment that reuses an
    earlier segment's image must still start with a visible cut.
    """
    colour = _colour(f"{index}:{shot.prompt}")
    picture = _open_picture(shot.picture, (width, height))
    if picture is None:
        picture = Image.new("RGB", (width, height), colour)
    elif tint:
        picture = Image.blend(picture, Image.new("RGB", (width, height), colour), 0.45)
    draw = ImageDraw.Draw(picture, "RGBA")
    short = min(width, height)
    font = _font(max(12, short // 24))
    small = _font(max(10, short // 40))
    chars = max(16, int(width / (short / 24) * 1.8))
    lines = _wrap(shot.prompt, chars, 4)
    line_height = max(14, short // 20)
    box_top = height - line_height * (len(lines) + 1) - short // 12
    draw.rectangle((0, box_top, width, height - short // 12), fill=(0, 0, 0, 140))
    for number, line in enumerate(lines):
        draw.text((short // 30, box_top + line_height // 2 + number * line_height), line,
                  fill=(255, 255, 255, 255), font=font)
    draw.text((short // 30, short // 30), f"segment {index + 1}/{count}  {label}",
              fill=(255, 255, 255, 255), font=small)
    return picture


def to_yuv420(image: Image.Image) -> Planes:
    """RGB picture -> one yuv420p array (BT.601 limited range), the layout PyAV expects."""
    rgb = np.asarray(image, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    height, width = y.shape

    def half(plane: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        halved: npt.NDArray[np.float32] = plane.reshape(height // 2, 2, width // 2, 2).mean(
            axis=(1, 3))
        return halved

    chroma = np.concatenate([half(u).reshape(-1), half(v).reshape(-1)])
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    out[:height] = np.clip(y, 0, 255).astype(np.uint8)
    out[height:] = np.clip(chroma, 0, 255).astype(np.uint8).reshape(height // 2, width)
    return out


def _with_bar(planes: Planes, width: int, height: int, fraction: float) -> Planes:
    """A copy of ``planes`` with a white progress bar ``fraction`` of the way along."""
    frame = planes.copy()
    bar = max(4, (min(width, height) // 60) & ~1)
    top = height - bar * 2
    frame[top : top + bar, : max(2, int(width * fraction)) & ~1] = 235
    return frame


def _frame_plan(spec: RenderSpec) -> list[tuple[int, int, float]]:
    """(segment, blend step, bar fraction) per frame; equal tuples give equal frames."""
    plan: list[tuple[int, int, float]] = []
    total = spec.duration * FPS
    for index, shot in enumerate(spec.shots):
        for frame in range(shot.seconds * FPS):
            number = len(plan)
            step = math.floor(number * _BAR_STEPS_PER_SECOND / FPS)
            fraction = min(1.0, (step + 1) * FPS / _BAR_STEPS_PER_SECOND / total)
            blend = 0
            last = index == len(spec.shots) - 1
            if last and spec.end_picture is not None:
                blend = max(0, frame - (shot.seconds * FPS - _CROSSFADE_FRAMES - 1))
            plan.append((index, blend, fraction))
    return plan


def _tone(spec: RenderSpec) -> npt.NDArray[np.float32]:
    """A quiet sine per segment (the pitch changes at each cut), mono, float32."""
    chunks = []
    for index, shot in enumerate(spec.shots):
        count = shot.seconds * AUDIO_RATE
        t = np.arange(count, dtype=np.float32) / AUDIO_RATE
        chunks.append(0.2 * np.sin(2 * np.pi * (330.0 + 110.0 * index) * t))
    return np.concatenate(chunks).astype(np.float32)


def render(spec: RenderSpec) -> bytes:
    """Encode the clip of ``spec`` as MP4 bytes (H.264 yuv420p 24 fps, AAC when ``audio``)."""
    if spec.width % 2 or spec.height % 2 or not spec.shots:
        raise ValueError("frame size must be even and a clip needs at least one segment")
    pictures = [
        to_yuv420(compose(spec.width, spec.height, shot, i, len(spec.shots), spec.label,
                          tint=shot.picture is not None
                          and any(o.picture == shot.picture for o in spec.shots[:i])))
        for i, shot in enumerate(spec.shots)
    ]
    end_planes: Planes | None = None
    if spec.end_picture is not None:
        last = spec.shots[-1]
        end_shot = Shot(last.prompt, last.seconds, spec.end_picture)
        end_planes = to_yuv420(
            compose(spec.width, spec.height, end_shot, len(spec.shots) - 1, len(spec.shots),
                    spec.label)
        )
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "stillimage"}
        audio = None
        if spec.audio:
            audio = container.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "mono"
        cache: dict[tuple[int, int, float], Planes] = {}
        for pts, key in enumerate(_frame_plan(spec)):
            planes = cache.get(key)
            if planes is None:
                index, blend, fraction = key
                base = pictures[index]
                if blend and end_planes is not None:
                    weight = blend / (_CROSSFADE_FRAMES + 1)
                    base = (base * (1 - weight) + end_planes * weight).astype(np.uint8)
                planes = _with_bar(base, spec.width, spec.height, fraction)
                cache = {key: planes}  # frames repeat consecutively: keep only the last one
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = pts
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            _encode_audio(container, audio, _tone(spec))
    return buffer.getvalue()


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream,
                  samples: npt.NDArray[np.float32]) -> None:
    for start in range(0, len(samples), AUDIO_FRAME):
        chunk = samples[start : start + AUDIO_FRAME].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                           layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def plain_spec(width: int, height: int, durations: Sequence[int], audio: bool,
               prompt: str = "") -> RenderSpec:
    """A spec without pictures (the ``cached`` render mode and benchmarks use it)."""
    return RenderSpec(width, height, tuple(Shot(prompt, d) for d in durations), audio)
