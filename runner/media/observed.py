"""What an output really is, beside what shotrun expected it to be.

The gateway's documentation states the duration, the aspect ratio and whether there is sound;
it never states a pixel size, a frame rate or a codec. So an output is *held* to what the
documentation states or what makes a file unusable (complete, decodable, duration,
orientation, audio when asked: :func:`runner.media.verify.verify_video`), and everything else is
*observed*: the facts are recorded with the take (store, sidecar, ``status --json``, the CSV
trace, the report), and a size other than the expected one is a warning, not a failure,
unless the manifest says ``verify: {size: strict}``. The expected size is the one
``shotrun probe`` observed on this gateway when there is a profile, else the nominal one
(:func:`runner.media.profile.expected_size`).

Why: a user tried shotrun on a gateway that renders 720p at another size than 1280x720, and
every one of 22 paid takes was downloaded, decoded and then failed; ``--retry-failed`` would
have paid for all of them again. An assumption must cost a warning, never a paid take.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from runner.core.model import TakeRequest, VerifyPolicy
from runner.media.profile import GatewayProfile, expected_size

if TYPE_CHECKING:  # PyAV is loaded by what decodes, not by status reading trace fields
    from runner.media.verify import VideoInfo


def size_text(width: int, height: int) -> str:
    """``1280x720``."""
    return f"{width}x{height}"


@dataclass(frozen=True, slots=True)
class OutputExpectations:
    """The run's rule for checking outputs: the manifest's policy and the gateway's profile."""

    policy: VerifyPolicy
    profile: GatewayProfile | None = None

    def size_for(self, request: TakeRequest) -> tuple[tuple[int, int], str]:
        """The size an output of ``request`` is expected to have, and "observed"/"nominal"."""
        return expected_size(request.resolution, request.aspect_ratio, self.profile)

    def check(self, path: Path, request: TakeRequest) -> tuple[VideoInfo, dict[str, Any]]:
        """Verify ``path`` for ``request``; the file's facts as recorded with the take.

        Raises :class:`runner.core.errors.VerifyError` for what makes the file unusable, and for
        another size only under ``verify: {size: strict}``.
        """
        from runner.media.verify import verify_video

        (width, height), source = self.size_for(request)
        info = verify_video(path, duration=request.duration, width=width, height=height,
                            audio=request.generate_audio,
                            size="strict" if self.policy.size == "strict" else "observe")
        return info, video_facts(info, (width, height), source, self.policy)


def file_facts(info: VideoInfo) -> dict[str, Any]:
    """What a video file is, whatever was expected of it (``shotrun probe`` reports these;
    :func:`video_facts` records them with what was expected)."""
    return {
        "width": info.width,
        "height": info.height,
        "fps": round(info.fps, 3) if info.fps else None,
        "codec": info.codec,
        "audio_codec": info.audio_codec,
        "duration": round(info.duration, 3),
        "video_duration": round(info.video_duration, 6),
    }


def video_facts(info: VideoInfo, expected: tuple[int, int], source: str,
                policy: VerifyPolicy) -> dict[str, Any]:
    """The facts recorded with a done take (``takes.video``, the sidecar's ``video``).

    ``size_warning`` is the warning the run gave (None when the size was the expected one, or
    when ``verify.size`` is ``off``): what ``status``, the report and the summary show.

    ``duration`` is the file's (the container's: it runs to the end of its longest stream, the
    sound's too); ``video_duration`` is the video stream's own, what an edit places on a
    timeline (:func:`video_length`). A 3 s picture with 3.2 s of sound is 72 frames at 24
    fps, not 77. Recorded to the microsecond: far below a frame at any rate.
    """
    other = (info.width, info.height) != tuple(expected)
    return {
        **file_facts(info),
        "expected_size": list(expected),
        "expected_from": source,
        "size_warning": (size_warning(info.width, info.height, expected)
                         if other and policy.size != "off" else None),
    }


def video_length(facts: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """``(fps, seconds of video)`` as :func:`video_facts` recorded them; None when either is
    missing: a take verified before shotrun recorded ``video_duration`` (or before the store
    kept any facts, schema 3), or a file without a frame rate.

    The fps is the one recorded, to three decimals: :func:`runner.views.export.chosen.standard_rate`
    turns 23.976 back into 24000/1001, as it does for the rate read from a file.
    """
    facts = facts or {}
    fps, seconds = facts.get("fps"), facts.get("video_duration")
    if _positive(fps) and _positive(seconds):
        return float(fps), float(seconds)
    return None


def _positive(value: object) -> TypeGuard[float]:
    """A number above zero (JSON gives int or float; True is no duration)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def size_warning(width: int, height: int, expected: Iterable[int]) -> str:
    """``960x540 where 1280x720 was expected``."""
    want = tuple(expected)
    return f"{size_text(width, height)} where {size_text(want[0], want[1])} was expected"


def trace_fields(facts: Mapping[str, Any] | None) -> dict[str, Any]:
    """The video fields of a trace record (``status --json``, the CSV): null until done."""
    facts = facts or {}
    return {
        "width": facts.get("width"),
        "height": facts.get("height"),
        "fps": facts.get("fps"),
        "codec": facts.get("codec"),
        "audio_codec": facts.get("audio_codec"),
        "size_warning": facts.get("size_warning"),
    }


def distinct_size_warnings(facts: Iterable[Mapping[str, Any] | None]) -> list[tuple[str, int]]:
    """Each distinct size warning with how many takes gave it, most frequent first.

    The summary says each once ("done at another size than expected: 22 takes, 160x90 where
    1280x720 was expected"), not once per take.
    """
    return ranked(Counter(f["size_warning"] for f in facts if f and f.get("size_warning")))


def ranked(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """``(warning, takes)`` pairs, most frequent first, then alphabetically."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
