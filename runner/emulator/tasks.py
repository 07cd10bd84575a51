"""The life cycle of the emulator's tasks, on the event loop's clock.

A task's status is *derived* from time rather than pushed by timers: it is ``pending`` for
its queue time, then ``processing`` with progress rising linearly, then ``completed`` (once
its video is really rendered, which may take longer than configured under load) or
``failed`` with a business code, as decided at creation. Deriving state from the clock means
no timer per task, so thousands of tasks cost nothing while idle.

Result links are signed with a random token that expires ``link_ttl`` seconds after it was
handed out; querying the task again after that hands out a fresh one, as the gateway does.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass
from typing import Any

import structlog

from runner.emulator.rendering import ImageRejected, Renderer
from runner.emulator.responses import new_task_id, new_token
from runner.emulator.settings import EmulatorSettings
from runner.emulator.stats import Stats
from runner.emulator.validation import Creation
from runner.wire.payload import canonical_json

log = structlog.get_logger()

FAILURE_MESSAGES = {
    "content_policy_violation": "The request was flagged by the content policy.",
    "invalid_parameters": "The parameters were refused by the model.",
    "image_processing_error": "A reference image could not be processed.",
    "image_dimension_mismatch": "A reference image has unsupported dimensions.",
    "generation_failed_no_content": "The model produced no content.",
    "service_error": "The generation service failed; try again later.",
    "generation_timeout": "The generation timed out; try again later.",
    "resource_exhausted": "The generation service is out of capacity; try again later.",
    "quota_exceeded": "The account quota is exhausted.",
    "service_unavailable": "The generation service is unavailable; try again later.",
    "unknown_error": "An unknown error happened; try again later.",
    "request_cancelled": "The task was cancelled; submit it again.",
    "resource_not_found": "The task is invalid or has expired.",
}


def credits_for(creation: Creation, rates: Any) -> float:
    """Credits reserved: per-second rate of the resolution (+ audio, except 4k) x seconds."""
    per_second = float(rates.get(creation.resolution, 0.0))
    if creation.generate_audio and creation.resolution != "4k":
        per_second += float(rates.get("audio", 0.0))
    return round(per_second * creation.duration, 4)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


@dataclass
class Task:
    """One task and everything that decides its answers."""

    task_id: str
    created: int  # epoch seconds
    creation: Creation
    started: float  # loop clock
    queue: float
    processing: float
    estimated: float
    credits: float
    fail_code: str | None = None
    fail_after: float = 0.0  # seconds into processing
    fail_message: str | None = None  # when more precise than the code's usual message
    video: bytes | None = None
    render_failed: bool = False
    link: tuple[str, float] | None = None  # (token, expiry on the loop clock)
    scale: float = 1.0  # the output's size as a fraction of the nominal one
    job: asyncio.Task[None] | None = None
    cancelled: bool = False  # taken out of the queue (fal's cancel): failed, never rendered
    account: str | None = None  # the label of the listed account that made it (None: default)

    def status(self, now: float) -> tuple[str, int]:
        """(status, progress) at loop time ``now``."""
        if self.cancelled:
            return "failed", 0
        begin = self.started + self.queue
        if now < begin:
            return "pending", 0
        elapsed = now - begin
        if self.fail_code is not None and elapsed >= self.fail_after:
            return "failed", self._progress(self.fail_after)
        if self.render_failed:
            return "failed", self._progress(elapsed)
        if elapsed >= self.processing and self.video is not None:
            return "completed", 100
        return "processing", self._progress(elapsed)

    def _progress(self, elapsed: float) -> int:
        if self.processing <= 0:
            return 99
        return max(1, min(99, int(100 * elapsed / self.processing)))

    def failure(self) -> tuple[str, str]:
        """(code, message) of a failed task."""
        code = self.fail_code or "service_error"
        return code, self.fail_message or FAILURE_MESSAGES.get(code, "The task failed.")

    def remaining(self, now: float) -> float:
        """Seconds until this task is planned to leave the pending/processing states."""
        return max(0.0, self.started + self.queue + self.processing - now)


class TaskBoard:
    """Every task by id, the ones in flight, and the links handed out."""

    def __init__(self, renderer: Renderer, stats: Stats) -> None:
        self.renderer = renderer
        self.stats = stats
        self.base_url = ""
        self._tasks: dict[str, Task] = {}
        self._active: set[str] = set()
        self._payloads: set[str] = set()
        self._links: dict[str, tuple[str, float]] = {}  # token -> (task id, expiry)
        self._jobs: set[asyncio.Task[None]] = set()
        # A provider format's own id of a task, both ways (fal's UUID, Kling's number): its
        # answers and result links carry that one, never the gateway-style board id.
        self._public: dict[str, str] = {}  # board id -> the client's id
        self._by_public: dict[str, str] = {}  # the client's id -> board id

    def get(self, task_id: str) -> Task | None:
        """The task, or None when unknown (by the board's id: see :meth:`named`)."""
        return self._tasks.get(task_id)

    def name(self, task: Task, public: str) -> None:
        """Give ``task`` the id its wire format hands the client (fal, Kling)."""
        self._public[task.task_id] = public
        self._by_public[public] = task.task_id

    def public_name(self, task: Task) -> str:
        """The id the client knows ``task`` by: its :meth:`name`, else the board's id (the
        gateway format's)."""
        return self._public.get(task.task_id, task.task_id)

    def named(self, public: str) -> Task | None:
        """The task the client knows as ``public`` (see :meth:`public_name`), or None.

        A task given a name is not found by its board id: a client of fal or Kling never
        saw that id, so it cannot be one it uses.
        """
        board_id = self._by_public.get(public)
        if board_id is None and public not in self._public:
            board_id = public
        return self._tasks.get(board_id) if board_id is not None else None

    def in_flight(self, now: float) -> int:
        """Tasks pending or processing at ``now`` (finished ones are counted out here)."""
        for task_id in list(self._active):
            status, _ = self._tasks[task_id].status(now)
            if status in ("completed", "failed"):
                self._leave(task_id)
                if status == "completed":
                    self.stats.completed_tasks += 1
                else:
                    self.stats.failed_tasks += 1
        self.stats.in_flight = len(self._active)
        return len(self._active)

    def in_flight_of(self, account: str, now: float) -> int:
        """Tasks of the account labelled ``account`` pending or processing at ``now``."""
        self.in_flight(now)
        return self.stats.account(account).in_flight

    def _enter(self, task: Task) -> None:
        """Put a new task on the board, in flight (its account's count too)."""
        self._tasks[task.task_id] = task
        self._active.add(task.task_id)
        if task.account is not None:
            self.stats.account(task.account).in_flight += 1

    def _leave(self, task_id: str) -> None:
        """Take a task out of those in flight (its account's count too)."""
        self._active.discard(task_id)
        account = self._tasks[task_id].account
        if account is not None:
            self.stats.account(account).in_flight -= 1

    def queued_before(self, started: float, now: float) -> int:
        """Tasks still pending that were created before loop time ``started`` (fal's queue
        position; a time rather than a task, since fal's late refusals are not tasks)."""
        return sum(1 for other in self._active
                   if self._tasks[other].started < started
                   and self._tasks[other].status(now)[0] == "pending")

    def cancel(self, task: Task, now: float) -> bool:
        """Take a task still pending out of the queue (False when it is not pending).

        Only a queued task can be stopped: nothing of it has run, so its render is cancelled
        before it starts (the render waits out the queue time first) and its credits are
        released, as a queue that never ran the request bills nothing. It then reads as
        ``failed`` with ``request_cancelled``, leaves the tasks in flight at once (its slot
        frees) and is counted in ``cancelled_tasks``, not in ``failed_tasks``: it failed at
        the client's wish, not the service's.
        """
        if task.status(now)[0] != "pending":
            return False
        task.cancelled = True
        task.fail_code = "request_cancelled"
        task.fail_message = None
        if task.job is not None:
            task.job.cancel()
        self._leave(task.task_id)
        self.stats.cancelled_tasks += 1
        self.stats.credits_reserved -= task.credits
        if task.account is not None:
            self.stats.account(task.account).credits_reserved -= task.credits
        task.credits = 0.0
        self.stats.in_flight = len(self._active)
        log.debug("emulator_task_cancelled", task_id=task.task_id)
        return True

    def retry_after(self, now: float, account: str | None = None) -> float:
        """Seconds until the first task in flight (of the account labelled ``account``, when
        given) is planned to finish (a slot frees)."""
        return min((self._tasks[t].remaining(now) for t in self._active
                    if account is None or self._tasks[t].account == account), default=0.0)

    def create(self, creation: Creation, body: Any, settings: EmulatorSettings,
               rng: random.Random, now: float, cost: float | None = None,
               account: str | None = None) -> Task:
        """Accept a task: decide its timings and fate, start rendering its video.

        ``cost`` is what it is charged, in the wire format's unit (None: gateway credits
        from ``settings.rates``); ``account`` the label of the listed account creating it
        (None: the default account)."""
        digest = hashlib.sha256(canonical_json(body)).hexdigest()
        if digest in self._payloads:
            self.stats.duplicate_payloads += 1
        self._payloads.add(digest)

        def jittered(value: float) -> float:
            return max(0.0, value * (1 + settings.jitter * rng.uniform(-1.0, 1.0)))

        created = int(time.time())
        task = Task(
            task_id=new_task_id(created), created=created, creation=creation, started=now,
            queue=jittered(settings.queue_time), processing=jittered(settings.processing_time),
            # The hint, planned rather than jittered (a gateway cannot know the draw), wrong
            # by ``estimate_factor`` when a test asks it to be, and in whole seconds as the
            # documented gateway gives it (``300``): a client tuned on sharper hints than a
            # real gateway gives would be tuned on a flattering emulator.
            estimated=float(round((settings.queue_time + settings.processing_time)
                                  * settings.estimate_factor)),
            credits=credits_for(creation, settings.rates) if cost is None else cost,
            scale=settings.output_scale, account=account,
        )
        if settings.failure_rate and rng.random() < settings.failure_rate:
            task.fail_code = rng.choice(settings.failure_codes)
            task.fail_after = task.processing * rng.uniform(0.2, 1.0)
        else:
            job = asyncio.create_task(
                self._render(task, settings.render == "cached", settings.check_images))
            task.job = job
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
        self._enter(task)
        self.stats.accepted_tasks += 1
        self.stats.credits_reserved += task.credits
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.in_flight(now))
        if account is not None:
            counts = self.stats.account(account)
            counts.accepted_tasks += 1
            counts.credits_reserved += task.credits
            counts.max_in_flight = max(counts.max_in_flight, counts.in_flight)
        log.debug("emulator_task_created", task_id=task.task_id, fails=task.fail_code)
        return task

    async def _render(self, task: Task, cached: bool, check_images: bool) -> None:
        def rendered(seconds: float) -> None:
            self.stats.renders += 1
            self.stats.render_seconds += seconds

        try:
            # Like the real service, work starts when the task leaves the queue: a task
            # still queued when the emulator stops costs no CPU.
            await asyncio.sleep(task.queue)
            task.video = await self.renderer.render(task.creation, task.task_id, cached,
                                                    rendered, check_images, task.scale)
        except asyncio.CancelledError:
            raise
        except ImageRejected as exc:
            loop = asyncio.get_running_loop()
            task.fail_code = exc.code
            task.fail_message = str(exc)
            task.fail_after = max(0.0, loop.time() - task.started - task.queue)
        except Exception as exc:  # a render bug must fail the task, not the server
            task.render_failed = True
            log.error("emulator_render_failed", task_id=task.task_id,
                      error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Cancel every render still running."""
        for job in list(self._jobs):
            job.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    def link_for(self, task: Task, now: float, ttl: float) -> str:
        """A signed result URL valid ``ttl`` seconds; reused while more than half is left.

        The path names the task by the id its client knows (:meth:`public_name`), so a fal
        or Kling client never meets the gateway-style board id.
        """
        if task.link is None or task.link[1] - now < ttl / 2:
            token = new_token()
            task.link = (token, now + ttl)
            self._links[token] = (task.task_id, now + ttl)
        return f"{self.base_url}/results/{self.public_name(task)}.mp4?sig={task.link[0]}"

    def check_link(self, task_id: str, token: str, now: float) -> str:
        """"ok", "expired" or "invalid" for a result link's token."""
        entry = self._links.get(token)
        if entry is None or entry[0] != task_id:
            return "invalid"
        return "ok" if now < entry[1] else "expired"

    def describe(self, task: Task, now: float, ttl: float, *, with_progress: bool = True
                 ) -> dict[str, Any]:
        """The documented creation/query body of ``task`` at ``now`` (without ``progress``
        when the emulator plays a gateway that never reports it)."""
        status, progress = task.status(now)
        body: dict[str, Any] = {
            "created": task.created,
            "id": task.task_id,
            "model": task.creation.model,
            "object": "video.generation.task",
            "progress": progress,
            "status": status,
            "type": "video",
            "task_info": {
                "can_cancel": status == "pending",
                "estimated_time": _number(task.estimated),
                "video_duration": task.creation.duration,
            },
            "usage": {
                "billing_rule": "per_second",
                "credits_reserved": _number(task.credits),
                "user_group": "default",
            },
        }
        if not with_progress:
            del body["progress"]
        if status == "completed":
            body["results"] = [self.link_for(task, now, ttl)]
        elif status == "failed":
            code, message = task.failure()
            body["error"] = {"code": code, "message": message}
        return body
