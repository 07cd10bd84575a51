"""What ``shotrun probe`` learnt about a gateway, kept for ``plan`` and ``run`` to use.

The gateway's documentation never states the pixel size of an output, its frame rate or how
exact ``estimated_time`` is; shotrun's nominal sizes (:func:`runner.core.model.frame_size`) are a
reading of other listings of the same model. ``shotrun probe --spend`` renders one cheapest
task and writes what it saw to ``<output_dir>/.shotrun/profiles/<label>.json``, one file per
provider and URL (:func:`gateway_label`), so that probing fal.ai never overwrites what was
learnt of the gateway in the same output folder. From then on the size a take is expected to
have is the *observed* one where the profile of the provider and URL the command sends to has
it, and the nominal one otherwise, and commands say which they used (:func:`expected_size`).
A profile of another provider or URL, the built-in emulator's included, never changes what
is expected of this one. (Before, one ``.shotrun/gateway-profile.json`` per folder held the
last probe's profile: it is still read, for the provider and URL it names.)

The profile is a hint, never a gate: a profile that cannot be read is ignored with a warning
(the nominal sizes stand), and what it says is only ever compared with, not enforced beyond
``verify.size``'s own rule.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from runner.core.fsutil import STATE_DIR, atomic_write_text, make_private_dir
from runner.core.model import ASPECT_RATIOS, Take, frame_size

log = structlog.get_logger()

PROFILES_DIR = "profiles"
LEGACY_PROFILE_FILE = "gateway-profile.json"  # one per folder, before profiles/
PROFILE_VERSION = 1


def size_key(resolution: str, aspect_ratio: str) -> str:
    """The profile's key for one (resolution, aspect ratio): ``"720p 16:9"``."""
    return f"{resolution} {aspect_ratio}"


@dataclass(frozen=True)
class GatewayProfile:
    """A gateway as one probe saw it.

    ``sizes`` maps :func:`size_key` to the (width, height) an output of that resolution and
    aspect ratio really had. ``details`` keeps everything else the probe recorded (the task
    body's fields and types, timings, link expiry, codecs), for ``probe --json`` and humans.
    """

    base_url: str  # as safe text (no credentials)
    probed_at: str  # ISO 8601 UTC
    sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The profile as written to disk."""
        return {
            "version": PROFILE_VERSION,
            "base_url": self.base_url,
            "probed_at": self.probed_at,
            "sizes": {key: list(size) for key, size in sorted(self.sizes.items())},
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatewayProfile:
        """A profile from :meth:`as_dict`'s shape; ValueError when it is not that shape."""
        if data.get("version") != PROFILE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {PROFILE_VERSION}")
        sizes: dict[str, tuple[int, int]] = {}
        for key, value in dict(data.get("sizes") or {}).items():
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, int) and v > 0 for v in value)):
                raise ValueError(f"sizes[{key!r}] is not [width, height]")
            sizes[str(key)] = (value[0], value[1])
        return cls(base_url=str(data.get("base_url", "")),
                   probed_at=str(data.get("probed_at", "")), sizes=sizes,
                   details=dict(data.get("details") or {}))


def profile_path(output_dir: Path, gateway: str) -> Path:
    """Where the profile of ``gateway`` (a :func:`gateway_label`) is saved.

    ``<output_dir>/.shotrun/profiles/<readable>-<digest>.json``: the readable part is the
    label with anything but letters, digits, dots and dashes turned into ``_``; the digest
    (of the whole label) keeps two labels that read alike apart.
    """
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", gateway).strip("_")[:60] or "gateway"
    digest = hashlib.sha256(gateway.encode("utf-8")).hexdigest()[:12]
    return Path(output_dir) / STATE_DIR / PROFILES_DIR / f"{readable}-{digest}.json"


def _legacy_path(output_dir: Path) -> Path:
    return Path(output_dir) / STATE_DIR / LEGACY_PROFILE_FILE


def _read(path: Path) -> GatewayProfile | None:
    """The profile in ``path``; None when there is none or it cannot be read (logged)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("gateway_profile_unreadable", path=str(path), error=str(exc))
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return GatewayProfile.from_dict(data)
    except ValueError as exc:
        log.warning("gateway_profile_unreadable", path=str(path),
                    error=f"{exc}; the nominal sizes are used (`shotrun probe --spend` "
                    "learns it again, paying for one task)")
        return None


def saved_profiles(output_dir: Path) -> list[tuple[Path, GatewayProfile]]:
    """Every readable profile of the folder, the most recently probed first."""
    folder = Path(output_dir) / STATE_DIR / PROFILES_DIR
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        paths = []
    found = [(path, profile) for path in [*paths, _legacy_path(output_dir)]
             if (profile := _read(path)) is not None]
    return sorted(found, key=lambda item: item[1].probed_at, reverse=True)


def find_profile(output_dir: Path, gateway: str) -> tuple[Path, GatewayProfile] | None:
    """The saved profile of ``gateway`` and its path (the old one-per-folder file too)."""
    path = profile_path(output_dir, gateway)
    profile = _read(path)
    if profile is not None and profile.base_url == gateway:
        return path, profile
    legacy = _read(_legacy_path(output_dir))
    if legacy is not None and legacy.base_url == gateway:
        return _legacy_path(output_dir), legacy
    return None


def load_profile(output_dir: Path, gateway: str | None = None) -> GatewayProfile | None:
    """The saved profile of ``gateway``; without one, the most recently probed of any.

    None when there is none or it cannot be read (logged).
    """
    if gateway is not None:
        found = find_profile(output_dir, gateway)
        return None if found is None else found[1]
    every = saved_profiles(output_dir)
    return every[0][1] if every else None


def save_profile(output_dir: Path, profile: GatewayProfile) -> Path:
    """Write the profile of its provider and URL atomically (mode 0600, like the store
    beside it), never over another's; its path."""
    path = profile_path(output_dir, profile.base_url)
    make_private_dir(path.parent.parent)
    make_private_dir(path.parent)
    atomic_write_text(path, json.dumps(profile.as_dict(), indent=2, sort_keys=True) + "\n",
                      mode=0o600)
    return path


def gateway_label(base_url: str, uses_emulator: bool, provider: str = "gateway") -> str:
    """How a profile names the gateway it was observed on: ``emulator`` for the built-in one
    (its port changes every run), else the URL without query or fragment; another
    provider than the gateway is named after it (``emulator (kling)``): one provider's
    outputs say nothing of another's."""
    from runner.wire.urls import safe_url_text

    label = "emulator" if uses_emulator else safe_url_text(base_url)
    return label if provider == "gateway" else f"{label} ({provider})"


@dataclass(frozen=True)
class ProfileChoice:
    """The profile a command uses for this gateway, or why it uses none."""

    profile: GatewayProfile | None
    other_gateway: str | None = None  # a profile exists, observed on this other gateway
    provider: str = "gateway"  # who renders where the command sends (for its words)
    gateway: str | None = None  # the gateway_label asked for (None: could not tell)
    path: Path | None = None  # where ``profile`` was read from

    def describe(self, takes: Iterable[Take]) -> str:
        """The line ``plan`` and ``run`` print about ``takes``' sizes
        (:func:`describe_expectations` of this choice)."""
        return describe_expectations(self.profile, takes, self.other_gateway, self.provider,
                                     self.gateway)


def profile_for(output_dir: Path, gateway: str | None, provider: str = "gateway"
                ) -> ProfileChoice:
    """The saved profile observed on ``gateway`` (a :func:`gateway_label`), if any.

    A profile learnt on the built-in emulator must not set what a real gateway's outputs are
    expected to be (nor one gateway's or provider's for another's): only the profile of this
    very provider and URL is used; without one, the most recent other is named so that the
    commands can say why the sizes stay nominal. ``gateway`` None (a caller that cannot tell
    where a run would send): no profile, the nominal sizes. ``provider`` only names the
    service in what the commands say (:func:`describe_expectations`).
    """
    if gateway is None:
        return ProfileChoice(None, provider=provider, gateway=gateway)
    found = find_profile(output_dir, gateway)
    if found is not None:
        return ProfileChoice(found[1], provider=provider, gateway=gateway, path=found[0])
    others = saved_profiles(output_dir)
    return ProfileChoice(None, other_gateway=others[0][1].base_url if others else None,
                         provider=provider, gateway=gateway)


def expected_size(resolution: str, aspect_ratio: str, profile: GatewayProfile | None
                  ) -> tuple[tuple[int, int], str]:
    """The size an output should have and where that belief comes from.

    ``("observed", ...)`` when the profile saw this resolution and aspect ratio, else the
    nominal size (``"nominal"``).
    """
    if profile is not None:
        seen = profile.sizes.get(size_key(resolution, aspect_ratio))
        if seen is not None:
            return seen, "observed"
    return frame_size(resolution, aspect_ratio), "nominal"


def derived_sizes(observed_key: str, observed: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """The other aspect ratios of ``observed_key``'s resolution, scaled as it was.

    One paid probe sees one (resolution, aspect ratio); the same gateway most likely scales
    its other aspect ratios alike (long and short side each by what was seen), so those are
    derived rather than left nominal, and marked as derived in ``details``. Sides are rounded
    to even numbers, as H.264's 4:2:0 sampling needs and encoders do.
    """
    resolution, aspect = observed_key.split(" ", 1)
    nominal = frame_size(resolution, aspect)
    long_side = max(nominal)
    long_scale = max(observed) / long_side
    short_scale = min(observed) / min(nominal)

    def scaled(side: int) -> int:
        factor = long_scale if side == long_side else short_scale
        return max(2, 2 * round(side * factor / 2))

    found: dict[str, tuple[int, int]] = {}
    for other in ASPECT_RATIOS:
        if other != aspect:
            width, height = frame_size(resolution, other)
            found[size_key(resolution, other)] = (scaled(width), scaled(height))
    return found


def _day(stamp: str) -> str:
    return stamp[:10] if len(stamp) >= 10 else (stamp or "an unknown date")


def expectations(profile: GatewayProfile | None, takes: Iterable[Take]
                 ) -> dict[str, dict[str, Any]]:
    """Per size key of ``takes``: the expected ``size`` and its ``source``: ``observed``,
    ``derived`` (from an observed one, see :func:`derived_sizes`) or ``nominal``."""
    derived = set(profile.details.get("derived_sizes", ())) if profile is not None else set()
    formats = {(take.request.resolution, take.request.aspect_ratio) for take in takes}
    found: dict[str, dict[str, Any]] = {}
    for resolution, aspect in formats:
        key = size_key(resolution, aspect)
        size, source = expected_size(resolution, aspect, profile)
        if source == "observed" and key in derived:
            source = "derived"
        found[key] = {"size": list(size), "source": source}
    return dict(sorted(found.items()))


def _shown(label: str) -> str:
    """A :func:`gateway_label` as a message says it (the emulator by name)."""
    if label == "emulator" or label.startswith("emulator ("):
        return "the built-in " + label
    return label


def describe_expectations(profile: GatewayProfile | None, takes: Iterable[Take],
                          other_gateway: str | None = None, provider: str = "gateway",
                          here: str | None = None) -> str:
    """The one line ``plan`` and ``run`` print: which output sizes they expect, and why.

    A user about to spend a night's credits should see whether the sizes outputs are held to
    were seen on this gateway or are shotrun's reading of other listings of the model.
    ``other_gateway``: a profile exists but was observed on that other gateway. ``provider``
    and ``here`` (the :func:`gateway_label` of where the command sends) name the service for
    fal.ai and Kling users, who have no "gateway"; the gateway's words stay as they were.
    """
    from runner.wire.specs import spec

    gateway = provider == "gateway"
    if profile is None and other_gateway is not None:
        where = _shown(other_gateway)
        if gateway:
            return (f"expected sizes: nominal (the gateway profile was observed on {where}, "
                    "not this gateway: `shotrun probe --spend` against this one learns it, "
                    "paying for one task)")
        this = _shown(here) if here is not None else "this one"
        return (f"expected sizes: nominal (the saved profile was observed on {where}, not "
                f"{this}: `shotrun probe --spend` against this one learns it, paying for one task)")
    if profile is None:
        what = "gateway profile" if gateway else f"saved profile of {spec(provider).label}"
        return (f"expected sizes: nominal (no {what}: `shotrun probe --spend` learns one, "
                "paying for one task)")
    found = expectations(profile, takes)
    by_source: dict[str, list[str]] = {"observed": [], "derived": [], "nominal": []}
    for key, item in found.items():
        by_source[item["source"]].append(key)
    where = _shown(profile.base_url)
    parts: list[str] = []
    if by_source["observed"]:
        parts.append(f"observed by `shotrun probe` of {where} on {_day(profile.probed_at)} "
                     f"for {', '.join(by_source['observed'])}")
    if by_source["derived"]:
        head = "" if parts else (f"from `shotrun probe` of {where} on "
                                 f"{_day(profile.probed_at)}, ")
        parts.append(f"{head}derived from what it observed for "
                     f"{', '.join(by_source['derived'])}")
    if by_source["nominal"]:
        rest = "for the rest" if parts else (
            f"({'the gateway' if gateway else 'the saved'} profile has none of these)")
        parts.append(f"nominal {rest} ({', '.join(by_source['nominal'])})")
    return "expected sizes: " + ("; ".join(parts) if parts else "nominal (no takes)")


def profile_json(chosen: ProfileChoice, takes: Iterable[Take]) -> dict[str, Any]:
    """What ``plan --json`` says of the profile: where, when, and the size of each format.

    Where is the path :func:`profile_for` read the profile from: the files are not read again.
    """
    take_list = list(takes)
    profile = chosen.profile
    return {
        "other_gateway": chosen.other_gateway,
        "path": str(chosen.path) if chosen.path is not None else None,
        "base_url": profile.base_url if profile is not None else None,
        "probed_at": profile.probed_at if profile is not None else None,
        "expected_sizes": expectations(profile, take_list),
        "line": chosen.describe(take_list),
    }
