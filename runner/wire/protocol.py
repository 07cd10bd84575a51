"""What the gateway answers, parsed into typed values, and the seam the scheduler talks to.

The scheduler never sees aiohttp or raw JSON: it calls a :class:`Gateway` (the real HTTP
client in :mod:`runner.providers.gateway.client`, or any object of the same shape) and gets these
frozen values or a :mod:`runner.core.errors` exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

TASK_STATUSES = ("pending", "processing", "completed", "failed")
#: The code of a creation answered 2xx by something that is plainly not the service (a
#: :class:`~runner.core.errors.MalformedResponse`'s): the client sets it, the scheduler reads it.
NOT_THE_GATEWAY = "not_the_gateway"


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task as the gateway describes it (creation and query answers share this shape)."""

    task_id: str
    status: str  # one of TASK_STATUSES
    progress: int = 0
    results: tuple[str, ...] = ()  # video URLs, valid 24 h after completion
    error_code: str | None = None  # business code when failed
    error_message: str | None = None
    estimated_time: float | None = None  # task_info.estimated_time, seconds
    credits_reserved: float | None = None  # usage.credits_reserved
    video_duration: float | None = None  # task_info.video_duration
    queue_position: int | None = None  # fal.ai: requests ahead of this one in the queue


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A local file made into a URL by the file service; ``expires_at`` is epoch seconds."""

    url: str
    expires_at: float | None
    file_id: str | None = None


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A result saved to a ``.part`` file: its total size and SHA-256 (hex).

    ``headers`` are the answer's headers (without cookies): ``shotrun probe`` reports what a
    result link says about its own life (``Expires``, ``Cache-Control``) and type.
    """

    path: Path
    size: int
    sha256: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Gateway(Protocol):
    """The operations the scheduler needs; each raises :mod:`runner.core.errors` types only."""

    @property
    def label(self) -> str:
        """How messages name who renders: "the gateway", "fal.ai", "the Kling API"."""
        ...

    async def create_task(self, payload: Mapping[str, Any]) -> TaskState:
        """POST /v1/videos/generations. Raises AmbiguousSubmission when the answer was lost."""
        ...

    async def get_task(self, task_id: str) -> TaskState:
        """GET /v1/tasks/{task_id}."""
        ...

    async def upload_file(self, path: Path, mime: str) -> UploadedFile:
        """Upload a local image through the file service (stream endpoint)."""
        ...

    async def download(self, url: str, part_path: Path) -> Downloaded:
        """Stream ``url`` into ``part_path`` (resuming with Range if it exists), fsync it."""
        ...

    async def close(self) -> None:
        """Release connections; the object cannot be used afterwards."""
        ...


@runtime_checkable
class ResolvesLostAnswers(Protocol):
    """A gateway whose creations carry an id the client chose (the Kling API's
    ``external_task_id``), so that a creation whose answer was lost can be looked up.

    The scheduler asks ``isinstance(gateway, ResolvesLostAnswers)``: the gateway and fal
    cannot, and their lost answers stay *ambiguous*.
    """

    async def resolve_lost(self, payload: Mapping[str, Any]) -> TaskState | None:
        """The task made by a creation of ``payload`` (which carries the client's id), or
        None when the provider has none: the creation never arrived."""
        ...
