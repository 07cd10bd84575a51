"""The frozen objects a manifest expands into, and that everything after the manifest uses.

Raw dicts from YAML never get past :mod:`runner.manifest`; the scheduler, the state store, the
report and the emulator client see only these types. A take's media are still *references*
here (a URL, a local file with its content hash, or a frame of another shot's output): they
become URLs only when the run uploads or extracts them, see
:func:`runner.wire.payload.build_payload`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.core.errors import Location
from runner.core.money import (
    CAP_KEYS,
    DEFAULT_CREDIT_RATES,
    DEFAULT_UNIT_RATES,
    DEFAULT_USD_RATES,
    RATE_KEYS,
)

MODEL_ID = "kling-o3-reference-to-video"
RESOLUTIONS = ("720p", "1080p", "4k")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
MIN_DURATION, MAX_DURATION = 3, 15
MAX_PROMPT_CHARS = 2500
MAX_SEGMENTS = 6
MAX_TAKES = 20
MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_RATES: Mapping[str, float] = DEFAULT_CREDIT_RATES

# Width x height of an output, by resolution and aspect ratio (what the gateway renders).
_LONG_SIDE = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """The (width, height) in pixels of a video of this resolution and aspect ratio."""
    long_side, short_side = _LONG_SIDE[resolution]
    if aspect_ratio == "16:9":
        return long_side, short_side
    if aspect_ratio == "9:16":
        return short_side, long_side
    return short_side, short_side


def frozen_mapping(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy of ``data``: what frozen objects hold instead of a dict."""
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A local image: uploaded through the file service before use; identified by content."""

    path: Path  # absolute
    sha256: str
    size: int
    mime: str  # judged by content: image/jpeg, image/png, image/gif, image/webp


@dataclass(frozen=True, slots=True)
class FrameRef:
    """A frame of another shot's picked take: ``frame`` is "first", "last" or seconds."""

    shot_id: str
    frame: str | float = "last"


# A media reference: an http(s) URL (str), a local file, or a frame of another shot.
Media = str | LocalFile | FrameRef


@dataclass(frozen=True, slots=True)
class ImageElement:
    """A subject element drawn from images: ``@ElementN`` in prompts."""

    frontal: Media
    references: tuple[Media, ...] = ()


@dataclass(frozen=True, slots=True)
class VideoElement:
    """A video subject: must be an http(s) URL (the file service takes images only)."""

    video: str


Element = ImageElement | VideoElement


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a ``multi_prompt`` shot."""

    prompt: str
    duration: int


@dataclass(frozen=True, slots=True)
class TakeRequest:
    """Everything the gateway is asked for one take, with prompts already rewritten.

    ``prompt`` and ``multi_prompt`` are mutually exclusive (exactly one is set). ``extra`` is
    passed through to the wire body as is.
    """

    prompt: str | None
    multi_prompt: tuple[Segment, ...] | None
    resolution: str = "720p"
    aspect_ratio: str = "16:9"
    duration: int = 5
    generate_audio: bool = False
    start_frame: Media | None = None
    end_frame: Media | None = None
    images: tuple[Media, ...] = ()
    elements: tuple[Element, ...] = ()
    model: str = MODEL_ID
    extra: Mapping[str, Any] = field(default_factory=frozen_mapping)

    def media(self) -> tuple[Media, ...]:
        """Every media reference of the request, in wire order (for uploads and checks)."""
        found: list[Media] = []
        if self.start_frame is not None:
            found.append(self.start_frame)
        if self.end_frame is not None:
            found.append(self.end_frame)
        found.extend(self.images)
        for element in self.elements:
            if isinstance(element, ImageElement):
                found.append(element.frontal)
                found.extend(element.references)
        return tuple(found)

    @property
    def size(self) -> tuple[int, int]:
        """The (width, height) the output must have."""
        return frame_size(self.resolution, self.aspect_ratio)


@dataclass(frozen=True, slots=True)
class Take:
    """One generation to run: a shot (after matrix expansion) and a take number (1-based).

    ``fingerprint`` is the SHA-256 of the canonical wire payload with local files replaced by
    their content hash (docs/manifest.md, "What makes a shot the same").
    """

    shot_id: str
    take: int
    request: TakeRequest
    fingerprint: str
    tags: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # shot ids this shot waits for (``after`` and ``from_shot``)
    location: Location | None = None  # where the shot is written in the manifest
    base_shot_id: str = ""  # the id before matrix expansion ("" when the same as shot_id)

    @property
    def key(self) -> str:
        """A stable, unique, path-safe name for this take: ``<shot-id>/take-<n>``."""
        return f"{self.shot_id}/take-{self.take}"


DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True, slots=True)
class Account:
    """One provider account a run may send through (``api.accounts``), by the variable that
    holds its key, never the key: the provider counts concurrency per account (Kling shares
    it between all keys of one account), so each account has its own limits.

    ``name`` is the stable label the store keeps with every task the account created: a task
    is polled and downloaded with the key of the account that created it.
    """

    name: str
    api_key_env: str
    concurrency: int = 4
    submit_rate: float = 2.0
    # The Kling API only: the variable of the access key (the token's issuer) beside the
    # secret key in api_key_env; None: the provider's own (KLING_ACCESS_KEY).
    access_key_env: str | None = None


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Where and how fast to talk to the gateway. The key is never here, only its variable."""

    base_url: str = "emulator"  # "emulator" or an http(s) URL
    files_url: str | None = None  # default: base_url
    api_key_env: str = "SHOTRUN_API_KEY"
    # The manifest names api_key_env (False: the provider's default variable): messages say
    # "named by api.api_key_env" only when it is so, or the user looks for a setting not there.
    api_key_env_set: bool = False
    provider: str = "gateway"  # "gateway", "fal" or "kling" (runner.wire.specs)
    model: str = MODEL_ID
    concurrency: int = 4
    submit_rate: float = 2.0
    downloads: int = 4
    download_timeout: float | None = None  # seconds per download; None: the client's default
    min_download_rate: float | None = None  # bytes per second; None: the client's default
    wire: Mapping[str, str | None] = field(default_factory=frozen_mapping)
    emulator: Mapping[str, Any] = field(default_factory=frozen_mapping)
    # The accounts ``api.accounts`` names, in the manifest's order; () when it names none.
    named_accounts: tuple[Account, ...] = ()

    @property
    def accounts(self) -> tuple[Account, ...]:
        """The accounts a run may use, never empty: those ``api.accounts`` names, else one
        implicit account ``default`` made of ``api_key_env``, ``concurrency`` and
        ``submit_rate`` (what a manifest without ``api.accounts`` always meant). Made from
        the fields as they are, so an override of ``concurrency`` reaches it."""
        if self.named_accounts:
            return self.named_accounts
        return (Account(DEFAULT_ACCOUNT, self.api_key_env, self.concurrency,
                        self.submit_rate),)


@dataclass(frozen=True, slots=True)
class Budget:
    """Spending caps and per-second rates (keys: resolutions, plus optional ``audio``), one
    of each per unit of money (:mod:`runner.core.money`): gateway credits (``max_credits``,
    ``rates``), Kling units (``max_units``, ``unit_rates``), fal dollars (``max_usd``,
    ``usd_rates``). A cap binds only spending in its own unit."""

    max_credits: float | None = None
    rates: Mapping[str, float] = field(default_factory=lambda: DEFAULT_RATES)
    max_units: float | None = None
    unit_rates: Mapping[str, float] = field(default_factory=lambda: DEFAULT_UNIT_RATES)
    max_usd: float | None = None
    usd_rates: Mapping[str, float] = field(default_factory=lambda: DEFAULT_USD_RATES)

    def cap(self, unit: str) -> float | None:
        """The cap of ``unit`` (None: no cap)."""
        value: float | None = getattr(self, CAP_KEYS[unit])
        return value

    def rates_for(self, unit: str) -> Mapping[str, float]:
        """The per-second rates of ``unit``, for estimates."""
        value: Mapping[str, float] = getattr(self, RATE_KEYS[unit])
        return value


SIZE_POLICIES = ("warn", "strict", "off")


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """How strictly an output is held to what the gateway never documented (issue 14).

    Integrity, duration and orientation are always checked: a file cut short or of the wrong
    shape is unusable. The pixel size is not documented, so by default (``warn``) a size other
    than the expected one is recorded and shown, not refused: a paid take is never thrown away
    over an assumption. ``strict`` refuses it (the behaviour before); ``off`` records it only.
    """

    size: str = "warn"

    def __post_init__(self) -> None:
        if self.size not in SIZE_POLICIES:
            raise ValueError(f"verify.size must be one of {', '.join(SIZE_POLICIES)}")


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated, expanded manifest: the only thing the run engine reads."""

    path: Path
    name: str
    output_dir: Path
    api: ApiConfig
    budget: Budget
    takes: tuple[Take, ...]
    warnings: tuple[Any, ...] = ()  # runner.core.errors.Problem with severity "warning"
    verify: VerifyPolicy = field(default_factory=VerifyPolicy)
    # ``state.url``: the PostgreSQL store (never with a password); None: the SQLite file.
    # Flag and environment come first: runner.core.storeurl.store_url.
    store_url: str | None = None

    @property
    def accounts(self) -> tuple[Account, ...]:
        """The provider accounts of this manifest, never empty (:attr:`ApiConfig.accounts`)."""
        return self.api.accounts
