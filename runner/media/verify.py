"""Checking a saved output by reading its packets, and reading frames back out of it.

A download can be complete byte for byte and still be the wrong video (a truncated upload at
the gateway, the wrong resolution, an HTML error page served with status 200). So every output
is opened with PyAV and checked against what was asked:

* it opens as a media file with a video stream;
* its duration (container, else stream, else where its frames end) is within ``tolerance``
  seconds of the requested duration;
* its picture (the decoded first frame) has the orientation the request's size has
  (landscape, portrait or square, within :data:`SQUARE_TOLERANCE`); with ``size="strict"``
  exactly the requested width and height. The gateway documents no pixel size, so by default
  a caller only *observes* the size (:mod:`runner.media.observed`): a file of another size is still
  a usable video of the shape asked for;
* ``audio=True`` requires an audio stream (``False``/``None`` accept either: a silent track
  on a video that was asked without sound is not worth discarding a paid result);
* it is not cut short: every packet of the video stream is read (demuxed, not decoded) and
  the frames they hold must reach the end the stream's index promises; a packet read short
  (libav flags it corrupt when the file ends inside it) also means a cut, and so does, for
  MP4/MOV, a top-level box that runs past the end of the file (which also catches a cut in
  the audio data or in a trailing index, where every video packet is still whole, and says
  why a file cut inside its media data does not even open when its index comes last). A cut
  is reported before anything else: it is the cause, a wrong duration only a symptom;
* the first frame decodes, and so does the last keyframe (its packet, kept from the scan, is
  fed to the same decoder: no second read, no seek), the decoder told to fail on damage
  rather than conceal it.

Why not decode everything: verification ran for every output and decoding a whole clip (the
emulator's have a single keyframe, a real 5 s clip a few) cost 25-35 ms CPU per 3 s 720p clip,
most of the runner's CPU per take; reading the packets and decoding two frames cost ~3 ms, and
~2 ms since opening decodes nothing and decoders are kept between files (see _decoder_for).
What that leaves unchecked: garbage inside a non-key frame, or inside a keyframe between the
first and the last (a full decode would have met it). The keyframes are the index's (``stss``) as
well as the packet flags: libav clears a packet's key flag when its data does not parse, and
the clip whose last keyframe is garbage must fail, not fall back to an earlier one.

:func:`extract_frame` ``"last"`` still decodes from a keyframe near the end to the very end:
the true last frame is what continuity hands on to the next shot.

Failures raise :class:`runner.core.errors.VerifyError` with a one-line message such as
``"take-1.mp4: duration 4 s, expected 5 s"``. PyAV is synchronous: call from a thread.
"""

from __future__ import annotations

import io
import math
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import structlog
from PIL import Image

from runner.core.errors import VerifyError

log = structlog.get_logger()

SQUARE_TOLERANCE = 0.04  # |width/height - 1| up to this is square: "within a few percent"
_TAIL_SECONDS = 2.0  # extract_frame("last"): seek this far before the end, decode to the end
_POSTER_WIDTH = 320
_MP4_FORMATS = frozenset({"mov", "mp4"})  # libav's demuxer names whose files are box lists
# Opening an MP4/MOV reads the fewest bytes libav takes ("probesize") and decodes nothing
# ("skip_frame"): the index already has every stream fact, and probe() decodes the frames it
# checks itself. Without these, libav decodes the first picture to learn its pixel format:
# 2 of the 2.5 ms an open of a 720p clip costs. See probe() for why.
_LEAN_OPEN = {"probesize": "32", "skip_frame": "all"}
# Top-level boxes of ISO BMFF (ISO/IEC 14496-12) and QuickTime; anything else after the last
# of them is left to libav rather than read as a box size.
_TOP_LEVEL_BOXES = frozenset(
    b"ftyp pdin moov moof mfra mdat free skip wide meta meco styp sidx ssix prft emsg uuid"
    .split()
)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What reading a file found."""

    duration: float  # seconds
    width: int
    height: int
    has_audio: bool
    fps: float | None
    codec: str
    last_frame_end: float  # seconds: where the whole video packets' frames end
    video_duration: float  # seconds the video stream's index says its frames cover
    frame_step: float  # seconds per frame (0 when the rate is unknown)
    cut: str = ""  # where the file's data stops early ("" when nothing shows it cut)
    audio_codec: str | None = None  # the first audio stream's codec, None without sound

    @property
    def missing_tail(self) -> float:
        """Seconds the index promises beyond the last whole frame."""
        return max(0.0, self.video_duration - self.last_frame_end)


def _av_errors() -> tuple[type[BaseException], ...]:
    return (av.FFmpegError, OSError, ValueError, EOFError, IndexError, StopIteration)


def _open(path: Path, options: dict[str, str] | None = None, cut: str | None = None) -> Any:
    try:
        return av.open(str(path), options=options or {})
    except _av_errors() as exc:
        why = f"{cut}: the file is cut short" if cut else _why(exc)
        raise VerifyError(f"{path.name}: does not open as a video ({why})") from None


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _frame_seconds(frame: Any) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def _stream_duration(stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return None


def _container_duration(container: Any, stream: Any) -> float | None:
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    return _stream_duration(stream)


def _first_frame(container: Any, stream: Any) -> Any:
    for frame in container.decode(stream):
        return frame
    return None


def _last_frame(container: Any, stream: Any, duration: float | None) -> Any:
    """Decode from a keyframe shortly before the end to the very end; the final frame."""
    if duration is not None and duration > _TAIL_SECONDS and stream.time_base is not None:
        target = int((duration - _TAIL_SECONDS) / stream.time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
    else:
        container.seek(0, stream=stream)
    last = None
    try:
        for frame in container.decode(stream):
            last = frame
    except _av_errors():
        pass  # cut inside its frames: the last frame that decodes is the last there is
    return last


@dataclass(slots=True)
class _Scan:
    """What demuxing the video stream (without decoding) found."""

    first_key: Any = None  # the first keyframe's packet, kept for decoding
    last_key: Any = None  # the last keyframe's packet
    start: int | None = None  # lowest pts of a whole packet (stream time base)
    end: int | None = None  # highest pts + duration of a whole packet
    short_at: int | None = None  # pts of a packet read short (the file ends inside it)


def _scan_packets(container: Any, stream: Any) -> _Scan:
    """Every packet of ``stream``, in file order: timing, keyframes, a packet read short."""
    keys = {entry.pos for entry in stream.index_entries if entry.is_keyframe}
    rate = stream.average_rate or stream.guessed_rate
    step = (int(1 / (rate * stream.time_base)) if rate and stream.time_base else 0) or 1
    scan = _Scan()
    first_key = last_key = None
    start = end = None
    for packet in container.demux(stream):
        pts = packet.pts
        if pts is None or not packet.size:
            continue  # the flush packet at the end; a packet without time says nothing
        if packet.is_corrupt:
            scan.short_at = pts
            break  # libav read fewer bytes than the index says: the file ends here
        if packet.is_keyframe or packet.pos in keys:
            last_key = packet
            if first_key is None:
                first_key = packet
        stop = pts + (packet.duration or step)
        if start is None or end is None:
            start, end = pts, stop
        else:
            start, end = min(start, pts), max(end, stop)
    scan.first_key, scan.last_key, scan.start, scan.end = first_key, last_key, start, end
    return scan


def _box_cut(path: Path, size: int) -> str | None:
    """Where an MP4/MOV file stops inside one of its top-level boxes ("" when they all fit);
    None when the file does not start with a box (not MP4/MOV: the check does not apply).

    Stray bytes after the last box (too few for a header, or no box type we know) are left
    alone: libav ignores them, and a paid result is not refused for them.
    """
    offset = 0
    with path.open("rb") as file:
        while offset + 8 <= size:
            file.seek(offset)
            header = file.read(16)
            length, kind = struct.unpack(">I4s", header[:8])
            if kind not in _TOP_LEVEL_BOXES:
                break
            if length == 1 and len(header) == 16:  # a 64-bit size follows the type
                length = struct.unpack(">Q", header[8:])[0]
            if length == 0:
                return ""  # "runs to the end of the file": it cannot be too long
            if length < 8:
                break
            if offset + length > size:
                name = kind.decode("ascii")
                return f"its {name} box needs {offset + length} bytes, the file has {size}"
            offset += length
    return "" if offset else None


# Decoders kept open between files, per thread (PyAV contexts are not thread-safe) and per
# (codec, extradata): opening one and letting it go costs more than decoding a 720p keyframe,
# and its picture buffers (1.4 MB each, above glibc's mmap threshold) were mapped, faulted in
# and unmapped file after file: 600 page faults and half of the check's CPU. A decoder is
# drained and flushed after each file, and dropped after any error, so no state crosses from
# one file to the next. Only codecs whose whole set-up is their extradata (avcC, hvcC) are
# kept; the others decode with the stream's own context, as before.
_REUSABLE_CODECS = frozenset({"h264", "hevc"})
_KEPT_DECODERS = 4  # per thread: the outputs of one run share one or two set-ups
_decoders = threading.local()


def _kept_decoders() -> OrderedDict[tuple[str, bytes], Any]:
    kept: OrderedDict[tuple[str, bytes], Any] | None = getattr(_decoders, "kept", None)
    if kept is None:
        kept = _decoders.kept = OrderedDict()
    return kept


def _configure(context: Any) -> Any:
    context.thread_count = 1  # two frames: a thread pool would cost more than it saves
    # A decoder conceals damage by default (garbage in the back of a keyframe's slice data
    # decodes as a smeared picture); "explode" makes it an error, as the check wants.
    context.options = {"err_detect": "+explode"}
    return context


def _decoder_for(stream: Any) -> tuple[Any, tuple[str, bytes] | None]:
    """A decoder for ``stream`` and the key it is kept under (None: not kept)."""
    own = stream.codec_context
    name = str(own.name)
    if name not in _REUSABLE_CODECS or not own.extradata:
        return _configure(own), None
    key = (name, bytes(own.extradata))
    kept = _kept_decoders()
    context = kept.pop(key, None)
    if context is None:
        context = _configure(av.CodecContext.create(name, "r"))
        context.extradata = key[1]
    return context, key


def _keep(context: Any, key: tuple[str, bytes] | None) -> None:
    """Flush a decoder that decoded cleanly and keep it for the next file."""
    if key is None:
        return
    context.flush_buffers()
    kept = _kept_decoders()
    kept[key] = context
    while len(kept) > _KEPT_DECODERS:
        kept.popitem(last=False)


def _decode_ends(name: str, stream: Any, scan: _Scan) -> tuple[int, int]:
    """Decode the first keyframe and the last one (once when they are the same): the size of
    the decoded picture."""
    if scan.first_key is None:
        raise VerifyError(f"{name}: no video frame decodes")
    context, key = _decoder_for(stream)
    same = scan.last_key is scan.first_key
    try:
        frames = list(context.decode(scan.first_key))
        if same:
            frames += context.decode(None)
    except _av_errors() as exc:
        raise VerifyError(f"{name}: does not decode ({_why(exc)})") from None
    if not same:
        try:
            frames += context.decode(scan.last_key)
            frames += context.decode(None)
        except _av_errors() as exc:
            raise VerifyError(f"{name}: the last frames do not decode ({_why(exc)})") from None
    _keep(context, key)
    if not frames:
        raise VerifyError(f"{name}: no video frame decodes")
    if len(frames) < (1 if same else 2):
        raise VerifyError(f"{name}: the last frames do not decode")
    return int(frames[0].width), int(frames[0].height)


def _frame_step(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.0


def probe(path: Path) -> VideoInfo:
    """Read every video packet of ``path``, decode its first and last keyframes, report.

    A file found cut short is reported (``cut``, ``last_frame_end``), not refused here, and
    not decoded: its damaged packets would only fail with a vaguer message.
    """
    path = Path(path)
    if not path.is_file():
        raise VerifyError(f"{path}: no such file")
    boxes = _box_cut(path, path.stat().st_size)
    # An MP4/MOV file's streams, sizes, rates and durations are all in its index: probing
    # packets on open (libav decodes some, the audio's too) would only repeat it, and cost
    # ~1 ms of the ~4 ms of a 3 s 720p clip with sound.
    container = _open(path, None if boxes is None else _LEAN_OPEN, boxes)
    try:
        if not container.streams.video:
            raise VerifyError(f"{path.name}: has no video stream")
        stream = container.streams.video[0]
        try:
            scan = _scan_packets(container, stream)
        except _av_errors() as exc:
            raise VerifyError(f"{path.name}: does not decode ({_why(exc)})") from None
        cut = ""
        if scan.short_at is not None:
            cut = f"a video packet at {float(scan.short_at * stream.time_base):.3g} s is short"
        elif boxes and _MP4_FORMATS & set(container.format.name.split(",")):
            cut = boxes
        size = (int(stream.codec_context.width), int(stream.codec_context.height))
        if not cut:
            size = _decode_ends(path.name, stream, scan)
        step = _frame_step(stream)
        last_end = 0.0
        if scan.start is not None and scan.end is not None:
            last_end = float((scan.end - scan.start) * stream.time_base)
        declared = _container_duration(container, stream)
        duration = declared if declared is not None else last_end
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            duration=duration,
            width=size[0],
            height=size[1],
            has_audio=bool(container.streams.audio),
            fps=float(rate) if rate else None,
            codec=str(stream.codec_context.name),
            last_frame_end=last_end,
            video_duration=_stream_duration(stream) or duration,
            frame_step=step,
            cut=cut,
            audio_codec=(str(container.streams.audio[0].codec_context.name)
                         if container.streams.audio else None),
        )
    finally:
        container.close()


def orientation(width: int, height: int) -> str:
    """``landscape``, ``portrait`` or ``square`` (within :data:`SQUARE_TOLERANCE`)."""
    if abs(width / height - 1) <= SQUARE_TOLERANCE:
        return "square"
    return "landscape" if width > height else "portrait"


#: How ``verify_video`` judges the pixel size: exactly (``strict``) or by orientation only
#: (``observe``: the caller records the size). A Literal, so that the manifest's own words
#: (``warn``, ``off``) cannot be passed here by mistake and quietly mean "observe".
SizeCheck = Literal["strict", "observe"]


def verify_video(
    path: Path,
    *,
    duration: float,
    width: int,
    height: int,
    audio: bool | None = None,
    tolerance: float = 0.25,
    size: SizeCheck = "strict",
) -> VideoInfo:
    """Check ``path`` against the request; VerifyError names the first mismatch.

    ``size="strict"`` refuses any other pixel size than ``width`` x ``height``; ``"observe"``
    only refuses another orientation (the caller records and reports the size).
    """
    path = Path(path)
    info = probe(path)
    name = path.name
    if info.cut:  # first: a cut file's other facts (its duration too) are not to be trusted
        if info.missing_tail > 0.001:
            raise VerifyError(f"{name}: frames stop at {info.last_frame_end:.3g} s of "
                              f"{info.video_duration:.3g} s (the file is cut short)")
        # every video frame is whole, but audio or the index after them is not
        raise VerifyError(f"{name}: {info.cut} (the file is cut short)")
    if abs(info.duration - duration) > tolerance:
        raise VerifyError(f"{name}: duration {info.duration:.3g} s, expected {duration:g} s")
    if info.missing_tail > max(3 * info.frame_step, 0.15):
        raise VerifyError(
            f"{name}: frames stop at {info.last_frame_end:.3g} s of {info.video_duration:.3g} s "
            "(the file is cut short)"
        )
    shape, wanted = orientation(info.width, info.height), orientation(width, height)
    if shape != wanted:
        raise VerifyError(f"{name}: size {info.width}x{info.height} is {shape}, expected "
                          f"{wanted} like {width}x{height}")
    if size == "strict" and (info.width, info.height) != (width, height):
        raise VerifyError(
            f"{name}: size {info.width}x{info.height}, expected {width}x{height} "
            "(verify.size is strict)"
        )
    if audio and not info.has_audio:
        raise VerifyError(f"{name}: has no audio track, but audio was requested")
    log.debug("output_verified", file=name, duration=round(info.duration, 3),
              width=info.width, height=info.height, audio=info.has_audio)
    return info


def _frame_at(container: Any, stream: Any, seconds: float) -> Any:
    """The frame showing at ``seconds``: seek to the keyframe before, decode forward."""
    if stream.time_base is not None and seconds > 0:
        container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
    half = _frame_step(stream) / 2
    chosen = None
    for frame in container.decode(stream):
        at = _frame_seconds(frame)
        if chosen is not None and at is not None and at > seconds + half:
            break
        chosen = frame
    return chosen


def extract_frame(path: Path, which: str | float) -> Image.Image:
    """A frame as an RGB Pillow image: ``"first"``, ``"last"`` or a time in seconds."""
    path = Path(path)
    if isinstance(which, str) and which not in ("first", "last"):
        raise ValueError(f"which must be 'first', 'last' or seconds, not {which!r}")
    if not isinstance(which, str) and (not math.isfinite(which) or which < 0):
        raise ValueError(f"which must be a non-negative time in seconds, not {which!r}")
    container = _open(path)
    try:
        if not container.streams.video:
            raise VerifyError(f"{path.name}: has no video stream")
        stream = container.streams.video[0]
        try:
            if which == "first":
                frame = _first_frame(container, stream)
            elif which == "last":
                frame = _last_frame(container, stream, _container_duration(container, stream))
            else:
                frame = _frame_at(container, stream, float(which))
        except _av_errors() as exc:
            raise VerifyError(f"{path.name}: does not decode ({_why(exc)})") from None
        if frame is None:
            raise VerifyError(f"{path.name}: no frame at {which}")
        image: Image.Image = frame.to_image()
        return image.convert("RGB")
    finally:
        container.close()


def poster_png(path: Path, *, width: int = _POSTER_WIDTH) -> bytes:
    """A small PNG still (a third of the way in, past fade-ins) for reports."""
    info = probe(path)
    image = extract_frame(path, info.duration / 3 if info.duration else "first")
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
