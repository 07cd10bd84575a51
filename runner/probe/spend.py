"""``shotrun probe --spend``: one cheapest paid task, followed to the end and looked at.

What the gateway's documentation leaves open (the output's pixel size, frame rate and codecs,
how exact ``estimated_time`` is, whether progress is reported, how a result link says when
it expires) can only be learnt by paying for one task. This module creates exactly one
(3 s, 720p, 16:9, a neutral prompt, no images), follows it, downloads and reads the video.

Paying once is a promise kept the way ``run`` keeps it: the intent is written durably to
``<output_dir>/.shotrun/probe/intent.json`` before the creation is sent, and the task id the
moment it arrives. A creation is never sent again blind: on the gateway and fal.ai a lost
answer is *ambiguous* (it may have been billed; neither has an idempotency key or a list of
tasks) and stops the probe; the next ``probe --spend`` refuses to create another while that
intent stands, and follows the task instead when its id was recorded (after a Ctrl-C or a
crash). On the Kling API the creation carries a fresh ``external_task_id``, recorded with
the intent: a lost answer is looked up by it and followed, and sent again only when Kling
has no such task. The video is kept (it was paid for) under ``.shotrun/probe/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog

from runner.core.errors import (
    AmbiguousSubmission,
    ConnectionFailed,
    DownloadError,
    DownloadRefused,
    GatewayError,
    LinkExpired,
    MalformedResponse,
    PermanentGatewayError,
    TransientGatewayError,
)
from runner.core.fsutil import atomic_write_text, make_private_dir
from runner.core.isotime import iso_time
from runner.core.model import Manifest, TakeRequest
from runner.core.money import unit_of
from runner.core.redact import redact, redact_value
from runner.probe.checks import asked_again
from runner.probe.dialects import ANSWER_FIELDS, GATEWAY_ANSWER, NEUTRAL_PROMPT
from runner.providers.download import finalize_download
from runner.providers.fal_client import FalClient
from runner.providers.gateway.client import GatewayClient
from runner.scheduler.backoff import BackoffPolicy
from runner.scheduler.polling import PollPolicy
from runner.state import STATE_DIR
from runner.wire.bodies import body_for
from runner.wire.common import CLIENT_TASK_ID
from runner.wire.parse import parse_epoch
from runner.wire.payload import build_payload, estimate_credits
from runner.wire.protocol import ResolvesLostAnswers, TaskState
from runner.wire.specs import GATEWAY, KLING
from runner.wire.urls import safe_url_text

log = structlog.get_logger()

PROBE_DIR = "probe"
INTENT_FILE = "intent.json"
SPEND_SECONDS, SPEND_RESOLUTION, SPEND_ASPECT = 3, "720p", "16:9"

# Query parameters and headers that say how long a link lives (S3, GCS, Azure, CDNs).
EXPIRY_PARAMETERS = frozenset({
    "expires", "expire", "expiry", "expires_at", "expiresat", "exp", "e", "x-amz-expires",
    "x-amz-date", "x-goog-expires", "x-goog-date", "se", "st", "validto", "valid_until",
    "ttl", "deadline", "auth_key",
})
REPORTED_HEADERS = ("Content-Type", "Content-Length", "Accept-Ranges", "Cache-Control",
                    "Expires", "Last-Modified", "Age")
_QUERY_RETRIES = 8  # transient failures in a row while following the task


def spend_request(manifest: Manifest) -> TakeRequest:
    """The cheapest take: shortest documented duration, lowest resolution, no media."""
    return TakeRequest(prompt=NEUTRAL_PROMPT, multi_prompt=None, resolution=SPEND_RESOLUTION,
                       aspect_ratio=SPEND_ASPECT, duration=SPEND_SECONDS,
                       model=manifest.api.model)


def spend_payload(manifest: Manifest) -> dict[str, Any]:
    """Its wire body, with the manifest's ``api.wire`` renames, exactly as ``run`` builds."""
    return build_payload(spend_request(manifest), str, manifest.api.wire)


def spend_estimate(manifest: Manifest) -> float | None:
    """Its estimate from the rates of the unit the provider bills in (None: no 720p rate)."""
    rates = manifest.budget.rates_for(unit_of(manifest.api.provider))
    return estimate_credits(spend_request(manifest), rates)


def probe_dir(output_dir: Path) -> Path:
    """``<output_dir>/.shotrun/probe``: the intent and the kept video."""
    return Path(output_dir) / STATE_DIR / PROBE_DIR


class Intent:
    """The durable record of the one paid creation (see the module docstring)."""

    def __init__(self, output_dir: Path) -> None:
        self.path = probe_dir(output_dir) / INTENT_FILE

    def read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("probe_intent_unreadable", path=str(self.path), error=str(exc))
            return {"state": "unreadable"}
        return data if isinstance(data, dict) else {"state": "unreadable"}

    def write(self, data: Mapping[str, Any]) -> None:
        make_private_dir(self.path.parent)
        text = json.dumps(redact_value(dict(data)), indent=2, sort_keys=True) + "\n"
        atomic_write_text(self.path, text, mode=0o600)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ProbeStopped(GatewayError):
    """The paid probe cannot go on safely (an earlier creation's answer was lost)."""


def json_type(value: Any) -> str:
    """The JSON type name of a value ``json.loads`` made (``object``, ``integer``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return "boolean"
    for kinds, name in ((int, "integer"), (float, "number"), (str, "string"),
                        (dict, "object"), (list, "array")):
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def _walk(value: Any, path: str, into: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            into.setdefault(inner, set()).add(json_type(item))
            _walk(item, inner, into)
    elif isinstance(value, list):
        for item in value:
            inner = f"{path}[]"
            into.setdefault(inner, set()).add(json_type(item))
            _walk(item, inner, into)


def _fits(documented: str | None, seen: set[str]) -> bool:
    if documented is None:  # the documentation names the field, not its type
        return True
    allowed = {"number", "integer"} if documented == "number" else {documented}
    return seen <= allowed | {"null"}


def body_shape(bodies: Iterable[Mapping[str, Any]],
               documented: Mapping[str, str | None] = GATEWAY_ANSWER) -> dict[str, Any]:
    """Every field path of ``bodies`` with its JSON types; the ones the documentation does
    not show; the ones whose type differs from the documentation's example."""
    seen: dict[str, set[str]] = {}
    for body in bodies:
        _walk(dict(body), "", seen)
    types = {path: "|".join(sorted(kinds)) for path, kinds in sorted(seen.items())}
    undocumented = [path for path in types if path not in documented]
    differing = {path: {"documented": documented[path], "seen": types[path]}
                 for path in types if path in documented
                 and not _fits(documented[path], seen[path])}
    return {"fields": types, "undocumented": undocumented, "types_differ": differing}


def _expiry_time(params: Mapping[str, str]) -> str | None:
    """When a signed link says it expires, for the common schemes; None when it does not."""
    lower = {key.lower(): value for key, value in params.items()}
    if "x-amz-date" in lower and "x-amz-expires" in lower:
        try:
            start = datetime.strptime(lower["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return iso_time((start + timedelta(seconds=int(lower["x-amz-expires"]))).timestamp())
        except ValueError:
            return None
    for key in ("expires", "expire", "expiry", "expires_at", "exp", "e", "se", "deadline"):
        if key in lower:
            stamp = parse_epoch(lower[key])
            if stamp is not None:
                return iso_time(stamp)
    return None


def link_facts(url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """What a result link tells about itself: its parameters' names (values only for the
    expiry-looking ones: the others may be signatures), and its headers of interest."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    expiry = {key: redact(value) for key, value in params.items()
              if key.lower() in EXPIRY_PARAMETERS}
    by_name = {name.lower(): value for name, value in headers.items()}
    return {
        "url": safe_url_text(url),
        "query_parameters": sorted(params),
        "expiry_parameters": expiry,
        "expires_at": _expiry_time(expiry),
        "headers": {name: by_name[name.lower()] for name in REPORTED_HEADERS
                    if name.lower() in by_name},
    }


def video_facts(path: Path) -> dict[str, Any]:
    """Size, duration, rate and codecs of the downloaded video, and its byte count."""
    from runner.media.observed import file_facts
    from runner.media.verify import probe  # here for start-up speed: PyAV

    return {**file_facts(probe(path)), "bytes": path.stat().st_size}


@dataclass
class Spent:
    """What the paid probe saw."""

    task_id: str
    payload: Mapping[str, Any]
    estimate: float | None
    provider: str = GATEWAY
    resumed: bool = False  # followed a task an earlier probe created
    credits_reserved: float | None = None
    estimated_time: float | None = None
    time_low: float | None = None  # the task took at least this long (seconds)...
    time_high: float | None = None  # ...and at most this long
    polls: int = 0
    statuses: list[str] = field(default_factory=list)
    progress: list[int] = field(default_factory=list)  # values as reported, in order
    progress_reported: bool = False
    queue_positions: list[int] = field(default_factory=list)  # fal.ai, as reported
    # Kling: the task found again by the external_task_id it was created with (None: not
    # asked); fal.ai: the status URL it answered beside the one shotrun polls.
    lookup: dict[str, Any] | None = None
    status_url: dict[str, Any] | None = None
    creation_body: dict[str, Any] | None = None
    query_bodies: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"  # the last status seen, or "timeout"
    error: str | None = None
    link: dict[str, Any] | None = None
    video: dict[str, Any] | None = None
    kept: Path | None = None

    def shape(self, bodies: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """:func:`body_shape` against what the provider's documentation shows."""
        return body_shape(bodies, ANSWER_FIELDS[self.provider])

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = redact_value({
            "provider": self.provider,
            "task_id": self.task_id, "resumed": self.resumed, "payload": dict(self.payload),
            "sent": body_for(self.provider, self.payload),
            "estimated_credits": self.estimate, "credits_reserved": self.credits_reserved,
            "status": self.status, "error": self.error,
            "creation_body": (self.shape([self.creation_body])
                              if self.creation_body is not None else None),
            "query_body": self.shape(self.query_bodies) if self.query_bodies else None,
            "timing": {"estimated_time": self.estimated_time,
                       "real_time_at_least": _round(self.time_low),
                       "real_time_at_most": _round(self.time_high), "polls": self.polls},
            "progress": {"reported": self.progress_reported, "values": self.progress},
            "queue_positions": self.queue_positions,
            "lookup": self.lookup, "status_url": self.status_url,
            "statuses": self.statuses, "link": self.link, "video": self.video,
            "kept": None if self.kept is None else str(self.kept),
        })
        return document


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True)
class Following:
    """How to follow the task: poll pacing, retries, the longest wait, the clock."""

    polling: PollPolicy
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    task_timeout: float = 3600.0
    clock: Callable[[], float] = time.time


async def _look_up(gateway: GatewayClient, payload: Mapping[str, Any]
                   ) -> TaskState | str | None:
    """The Kling task a creation of ``payload`` made (by its ``external_task_id``), None
    when there is none (it never arrived), or why the look-up failed."""
    if not isinstance(gateway, ResolvesLostAnswers) or not payload.get(CLIENT_TASK_ID):
        return "this provider cannot look a creation up"
    resolver = gateway
    try:
        return await asked_again(lambda: resolver.resolve_lost(payload))
    except GatewayError as exc:
        return redact(exc.message)


def _earlier_elsewhere(earlier: Mapping[str, Any], intent: Intent) -> ProbeStopped:
    """An earlier paid probe, on another provider or URL, whose task may still render."""
    where = earlier.get("base_url") or "an unknown gateway"
    what = (f"task {earlier['task_id']}" if earlier.get("task_id")
            else "a creation whose answer was lost")
    return ProbeStopped(
        f"an earlier `shotrun probe --spend` at {where} left {what} that may still be "
        f"rendering (and is paid for): probe that provider and URL again to collect it (it "
        f"spends nothing), or remove {intent.path} to forget it")


def _sent_at(earlier: Mapping[str, Any]) -> float | None:
    """When an earlier probe sent its creation (None when it did not record it)."""
    when = earlier.get("sent_at")
    return float(when) if isinstance(when, int | float) and when > 0 else None


async def _resume(gateway: GatewayClient, earlier: Mapping[str, Any], intent: Intent,
                  spent_as: Callable[[str, Mapping[str, Any]], Spent]
                  ) -> tuple[Spent, float | None, float | None] | None:
    """The task an earlier probe of this gateway left, to follow; None when it left none
    (its creation never arrived: looked up on the Kling API). Raises :class:`ProbeStopped`
    when its creation may exist and cannot be looked up."""
    before = earlier.get("payload")
    payload: Mapping[str, Any] = dict(before) if isinstance(before, dict) else {}
    sent = _sent_at(earlier)
    if earlier.get("state") == "created" and isinstance(earlier.get("task_id"), str):
        log.info("probe_task_resumed", task_id=earlier["task_id"])
        return spent_as(str(earlier["task_id"]), payload), sent, sent
    if earlier.get("state") not in ("sending", "unreadable"):
        return None
    found = await _look_up(gateway, payload)
    if isinstance(found, TaskState):
        log.info("probe_lost_answer_found", task_id=found.task_id)
        intent.write({**earlier, "state": "created", "task_id": found.task_id})
        return spent_as(found.task_id, payload), sent, sent
    if found is not None:
        raise ProbeStopped(
            f"an earlier `shotrun probe --spend` sent a creation whose answer was lost (it "
            f"may have been billed; {found}): not sending another; remove {intent.path} to "
            "probe again, which may pay twice")
    log.info("probe_lost_answer_never_arrived", external_task_id=payload.get(CLIENT_TASK_ID))
    return None


async def _send(gateway: GatewayClient, payload: Mapping[str, Any], intent: Intent,
                base_url: str, clock: Callable[[], float], policy: BackoffPolicy
                ) -> tuple[TaskState, dict[str, Any], float]:
    """Send the creation, its intent durable first: (state, answer body, when sent).

    A lost answer is looked up where the provider can (Kling), else it stops the probe; a
    429 or 5xx answer (nothing created) is waited out and the creation sent again; a refusal
    for good raises with the intent cleared. An interruption leaves the intent as it is.
    """
    refusals = 0
    while True:
        sent = clock()
        intent.write({"state": "sending", "base_url": base_url, "sent_at": sent,
                      "sent": iso_time(sent), "payload": dict(payload)})
        try:
            state, body = await gateway.create_task_answer(payload)
            return state, body, sent
        except (AmbiguousSubmission, ConnectionFailed) as exc:
            if isinstance(exc, ConnectionFailed) and not exc.maybe_sent:
                intent.clear()
                raise
            found = await _look_up(gateway, payload)
            if isinstance(found, TaskState):
                log.info("probe_lost_answer_found", task_id=found.task_id)
                return found, {}, sent
            if found is None:  # the Kling API has no such task: nothing was created
                intent.clear()
                raise ProbeStopped(
                    f"{exc.message}; the Kling API has no task with external_task_id "
                    f"{payload[CLIENT_TASK_ID]}, so nothing was created or billed: "
                    "`shotrun probe --spend` again is safe (it pays for one new task, not "
                    "two)") from None
            raise ProbeStopped(f"{exc.message}; not sent again (it may have been billed; "
                               f"{found}); {intent.path} records it") from None
        except MalformedResponse as exc:
            if exc.status is not None and 200 <= exc.status < 300:
                raise ProbeStopped(f"{exc.message}; the creation was accepted, so a task "
                                   f"may exist and be billed; {intent.path} records it"
                                   ) from None
            intent.clear()
            raise
        except TransientGatewayError as exc:  # 429 or 5xx: answered, nothing created
            intent.clear()
            refusals += 1
            if refusals > policy.max_attempts:
                raise
            delay = policy.delay(refusals - 1, exc.retry_after)
            log.info("probe_create_retry", error=exc.message, delay=round(delay, 3))
            await asyncio.sleep(delay)
        except GatewayError:
            intent.clear()  # refused, out of credits, unreachable: nothing was created
            raise


async def create_once(gateway: GatewayClient, manifest: Manifest, *, base_url: str,
                      built_in: bool, clock: Callable[[], float] = time.time,
                      backoff: BackoffPolicy | None = None,
                      announce: Callable[[], None] | None = None,
                      ) -> tuple[Spent, float | None, float | None]:
    """The one creation (or the task an earlier probe created): (spent, sent, answered);
    the times are None for an earlier probe's task whose sending time was not recorded.

    An earlier probe's intent for another gateway is never overwritten (its task may be
    paid for and still rendering); for this one, its task is followed (:func:`_resume`).
    Otherwise the creation is sent (:func:`_send`); on the Kling API it carries a fresh
    ``external_task_id``, recorded with the intent, by which a lost answer is looked up.
    ``announce`` is called once, just before a creation is first sent.
    """
    intent = Intent(manifest.output_dir)
    provider = manifest.api.provider
    estimate = spend_estimate(manifest)

    def spent_as(task_id: str, payload: Mapping[str, Any], **seen: Any) -> Spent:
        return Spent(task_id, payload, estimate, provider, **seen)

    earlier = None if built_in else intent.read()
    if earlier is not None and earlier.get("base_url") != base_url:
        raise _earlier_elsewhere(earlier, intent)
    if earlier is not None:
        resumed = await _resume(gateway, earlier, intent,
                                lambda task_id, payload: spent_as(task_id, payload,
                                                                  resumed=True))
        if resumed is not None:
            return resumed
    payload = spend_payload(manifest)
    if isinstance(gateway, ResolvesLostAnswers):
        payload[CLIENT_TASK_ID] = "shotrun-probe-" + secrets.token_hex(16)
    if announce is not None:
        announce()
    state, body, sent = await _send(gateway, payload, intent, base_url, clock,
                                    backoff or BackoffPolicy())
    answered = clock()
    intent.write({"state": "created", "base_url": base_url, "sent_at": sent,
                  "sent": iso_time(sent), "task_id": state.task_id, "payload": payload})
    spent = spent_as(state.task_id, payload, creation_body=body or None)
    _saw(spent, state, body)
    return spent, sent, answered


async def check_identity(gateway: GatewayClient, spent: Spent) -> None:
    """What a provider's own way to find the task again says (recorded in ``spent``).

    Kling: the task is looked up by the ``external_task_id`` it was created with, which is
    what a run relies on to never pay twice for a lost answer. fal.ai: the ``status_url``
    its submit answered is compared with the one shotrun polls (built from the request id
    alone, so that a restarted run finds it).
    """
    if spent.provider == KLING and spent.payload.get(CLIENT_TASK_ID):
        found = await _look_up(gateway, spent.payload)
        spent.lookup = {
            "external_task_id": spent.payload[CLIENT_TASK_ID],
            "found": found.task_id if isinstance(found, TaskState) else None,
            "same_task": isinstance(found, TaskState) and found.task_id == spent.task_id,
            "error": found if isinstance(found, str) else None,
        }
    answered = (spent.creation_body or {}).get("status_url")
    if isinstance(gateway, FalClient) and isinstance(answered, str):
        ours = gateway.status_url(spent.task_id)
        spent.status_url = {"answered": safe_url_text(answered), "polled": safe_url_text(ours),
                            "same": urlsplit(answered)[:3] == urlsplit(ours)[:3]}


def _saw(spent: Spent, state: TaskState, body: Mapping[str, Any]) -> None:
    """Record what one task body says."""
    spent.status = state.status
    if not spent.statuses or spent.statuses[-1] != state.status:
        spent.statuses.append(state.status)
    if state.credits_reserved is not None:
        spent.credits_reserved = state.credits_reserved
    if state.estimated_time is not None and spent.estimated_time is None:
        spent.estimated_time = state.estimated_time
    if state.queue_position is not None and (
            not spent.queue_positions or spent.queue_positions[-1] != state.queue_position):
        spent.queue_positions.append(state.queue_position)
    raw = body.get("progress")
    if "progress" in body:
        spent.progress_reported = True
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            value = round(raw)
            if not spent.progress or spent.progress[-1] != value:
                spent.progress.append(value)


async def follow(gateway: GatewayClient, spent: Spent, sent: float | None,
                 answered: float | None, how: Following) -> TaskState | None:
    """Poll until the task ends (its last state), or None when ``task_timeout`` passed.

    An earlier probe's task (``spent.resumed``) is asked about at once: it may have ended
    long ago. Its real time is known only when the earlier probe recorded when it sent it.
    """
    clock = how.clock
    estimate = spent.estimated_time
    if estimate is not None:  # whole seconds: a 0 is "under a second", not "no hint"
        estimate = max(estimate, how.polling.min_interval)
    started = clock()
    if not spent.resumed:
        await asyncio.sleep(how.polling.first_delay(estimate))
    origin = started if sent is None else sent
    trip = 0.0 if sent is None or answered is None else answered - sent
    before = answered  # the latest moment the task was seen unfinished
    failures = 0
    while True:
        if clock() - started > how.task_timeout:
            spent.status = "timeout"
            return None
        try:
            state, body = await gateway.get_task_answer(spent.task_id)
        except TransientGatewayError as exc:
            failures += 1
            if failures > _QUERY_RETRIES:
                raise
            wait = exc.retry_after
            await asyncio.sleep(how.backoff.delay(failures - 1, wait))
            continue
        failures = 0
        now = clock()
        spent.polls += 1
        spent.query_bodies.append(body)
        _saw(spent, state, body)
        if state.status in ("completed", "failed"):
            if sent is not None and answered is not None and before is not None:
                spent.time_low = max(0.0, before - answered)
                spent.time_high = now - sent
            if state.status == "failed":
                spent.error = redact(f"{state.error_code or 'no code'}: "
                                     f"{state.error_message or 'no message'}")
            return state
        before = now
        await asyncio.sleep(how.polling.next_delay(
            now - origin, estimate, state.progress, trip=trip))


async def collect(gateway: GatewayClient, spent: Spent, state: TaskState, output_dir: Path,
                  how: Following) -> None:
    """Download the result under ``.shotrun/probe/``, keep it, read its facts."""
    folder = probe_dir(output_dir)
    make_private_dir(folder)
    dest = folder / f"{spent.task_id}.mp4"
    part = folder / f"{spent.task_id}.mp4.part"
    url = state.results[0]
    for attempt in range(how.backoff.max_attempts + 1):
        try:
            got = await gateway.download(url, part)
            break
        except LinkExpired:
            if attempt == how.backoff.max_attempts:
                raise
            fresh, _ = await gateway.get_task_answer(spent.task_id)
            url = fresh.results[0] if fresh.results else url
        except DownloadRefused:
            raise
        except DownloadError:
            if attempt == how.backoff.max_attempts:
                raise
            await asyncio.sleep(how.backoff.delay(attempt))
    finalize_download(part, dest, part_synced=True)
    spent.link = link_facts(url, got.headers)
    spent.kept = dest
    spent.video = await asyncio.to_thread(video_facts, dest)
    Intent(output_dir).clear()  # the task is collected: a next probe may spend again


async def spend_once(gateway: GatewayClient, manifest: Manifest, *, base_url: str,
                     built_in: bool, how: Following,
                     announce: Callable[[], None] | None = None) -> Spent:
    """Create (or resume) the one paid task, follow it, collect its video.

    The intent is cleared once the task has ended (collected, or failed) or the gateway no
    longer knows it; it stays while the task may still be rendering (a timeout, Ctrl-C, a
    download that failed), so that the next probe follows it instead of paying again.
    """
    spent, sent, answered = await create_once(gateway, manifest, base_url=base_url,
                                              built_in=built_in, clock=how.clock,
                                              backoff=how.backoff, announce=announce)
    intent = Intent(manifest.output_dir)
    await check_identity(gateway, spent)
    try:
        state = await follow(gateway, spent, sent, answered, how)
    except PermanentGatewayError as exc:  # 404 / resource_not_found: nothing to follow
        intent.clear()
        raise PermanentGatewayError(f"{exc.message}; the probe's record of it was removed: "
                                    "`shotrun probe --spend` again creates a new task (paid)",
                                    code=exc.code, status=exc.status) from None
    if state is not None and state.status == "completed":
        await collect(gateway, spent, state, manifest.output_dir, how)
    elif state is not None:
        intent.clear()  # failed: it ended, and the report says why
    return spent
