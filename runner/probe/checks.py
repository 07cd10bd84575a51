"""The checks ``shotrun probe`` makes without spending: reached, key accepted, field names.

The gateway has no "validate only" endpoint, but it documents that an invalid creation is
answered ``400 invalid_request_error`` (docs/gateway-api.md, "Errors") and that billing starts
when a task is *created*. So every request here is a creation made invalid on purpose by
one documented rule, a ``duration`` of 0 (the documented range is 3 to 15): the answer
tells whether the URL is the gateway (reached), whether the key is accepted (a 400, not a
401), and, request by request, whether a field *name* is known.

Reading a field's verdict needs to know in which order the gateway validates, which no
documentation says. A calibration request carries a name no gateway knows besides the
invalid duration: when the answer names that field (``param``), the gateway reports unknown
names before it judges values, and a probe of one field that is answered about the duration
instead means the field's name is known. When the calibration is answered about the
duration (or the gateway ignores unknown names), no field can be judged that way and each
is reported as "could not tell", never as a certainty. A field is "refused" only when the
answer names it *and* reads like a refusal of an unknown name (the calibration's own
message with the name swapped, or words such as "unknown").

Limits, said in the report too: a gateway that bills a refused creation, or that treats a
``duration`` of 0 as "the default", is not the documented one; the first request is the
plain invalid body, and if it is accepted (a task created) nothing more is sent. Fields
inside ``elements`` are not judged: a gateway checks them, if at all, after the body's own
fields (the emulator does), so the invalid duration hides them.

fal.ai and the Kling API are probed the same way in their own words (:mod:`.dialects`):
their documented body fields, a duration of ``"0"``, fal's validation ``loc`` or the field
the Kling message names. fal.ai documents no synchronous validation: a body it queues
instead of refusing is cancelled at once (its documented cancel) and followed until it
ends, and no further creation is sent. Beside the creations, one free query asks about a
task nobody created (and, on the Kling API, looks up an ``external_task_id`` nobody used):
a run reads the answer as "the provider does not know this task", and the Kling API's
"never arrived", which is what keeps a lost creation from being paid twice.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import structlog

from runner.core.errors import (
    AmbiguousSubmission,
    AuthenticationFailed,
    GatewayError,
    GatewayUnreachable,
    MalformedResponse,
    PermanentGatewayError,
    TransientGatewayError,
)
from runner.core.model import Manifest
from runner.core.redact import redact
from runner.probe.dialects import (
    GATEWAY_DIALECT,
    NEUTRAL_PROMPT,
    PROBE_IMAGE_URL,
    Dialect,
)
from runner.providers.fal_client import FalClient
from runner.providers.gateway.client import GatewayClient
from runner.scheduler.backoff import BackoffPolicy
from runner.wire.common import CLIENT_TASK_ID
from runner.wire.payload import ELEMENT_FIELDS, TOP_LEVEL_FIELDS, normalise_renames
from runner.wire.protocol import ResolvesLostAnswers
from runner.wire.specs import FAL, GATEWAY, KLING

log = structlog.get_logger()

#: A name no gateway documents: the calibration of the validation order.
UNKNOWN_FIELD = "shotrun_probe_no_such_field"
# How gateways word "no such field" (Go's encoding/json, pydantic, OpenAI, JSON Schema...):
# words about a *name*, so that "unexpected value" of a known field does not count.
_NAME = r"(?:field|param(?:eter)?|key|propert(?:y|ies)|argument|input|name)s?"
_UNKNOWN_WORDS = re.compile(
    rf"(?:unknown|unrecogni[sz]ed|unexpected|unsupported|extra|additional)\s+(?:request\s+)?"
    rf"{_NAME}\b|\b{_NAME}\b[^.;]*\bnot (?:allowed|permitted|supported|recogni[sz]ed|expected)"
    r"|no such field",
    re.IGNORECASE,
)
_TRANSIENT_TRIES = 4  # a 429 or a 5xx on a refused creation: asked again (it costs nothing)
_FREE_BACKOFF = BackoffPolicy(base=0.5, cap=5.0, retry_after_cap=30.0)
T = TypeVar("T")

NAMES_FIRST_WHY = ("the duration was judged next, and an unknown field is named before that")

NAMES_LATER_WHY = ("the answer is about the invalid duration, and an unknown field is not "
                   "named before it (or unknown fields are ignored)")

# What became of a creation fal.ai queued instead of refusing.
CANCELLED, ENDED_FAILED, ENDED_DONE, STILL_QUEUED = (
    "cancelled", "ended failed", "ended with a video", "still queued")
QUEUED_WAIT = 120.0  # seconds a queued invalid request is followed before giving up on it

# Verdicts.
ACCEPTED = "accepted"
REFUSED = "refused"
UNSURE = "could not tell"
LEFT_OUT = "left out"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the gateway answered to one creation invalid on purpose."""

    status: int | None  # HTTP status; None when no answer came back
    code: str | None = None
    param: str | None = None
    message: str = ""  # redacted
    task_id: str | None = None  # set when the gateway *created* a task (it may bill it)
    created: bool = False  # the gateway accepted the body (2xx): a task may exist
    # fal.ai may queue a body and validate it later: what became of that request
    # (CANCELLED, ENDED_FAILED, ENDED_DONE, STILL_QUEUED); None when nothing was queued.
    outcome: str | None = None
    outcome_detail: str = ""

    @property
    def harmless(self) -> bool:
        """A task was created but it ended, or was cancelled, without a video."""
        return self.created and self.outcome in (CANCELLED, ENDED_FAILED)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "param": self.param,
                "message": self.message, "created": self.created, "task_id": self.task_id,
                "outcome": self.outcome, "outcome_detail": self.outcome_detail or None}


@dataclass(frozen=True, slots=True)
class Lookup:
    """How the provider answers about a task it does not know: the run reads a refusal
    (4xx) as "the provider no longer knows the task", and on the Kling API a lost creation
    is looked up by its ``external_task_id``, read as "never arrived" when not found."""

    asked: str  # what was asked ("task <id>", "external_task_id <id>")
    read_as_unknown: bool  # answered the way shotrun reads as "no such task"
    status: int | None
    code: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"asked": self.asked, "read_as_unknown": self.read_as_unknown,
                "status": self.status, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The verdict on one field name."""

    name: str  # the documented name (or a shot's ``extra`` key)
    wire: str | None  # the name sent; None when ``api.wire`` leaves the field out
    source: str  # "documented", "api.wire" (renamed) or "extra" (a shot's extra field)
    verdict: str  # ACCEPTED, REFUSED, UNSURE or LEFT_OUT
    why: str
    answer: Answer | None = None

    def as_json(self) -> dict[str, Any]:
        return {"field": self.name, "sent_as": self.wire, "source": self.source,
                "verdict": self.verdict, "why": self.why,
                "answer": None if self.answer is None else self.answer.as_json()}


@dataclass(frozen=True, slots=True)
class Checks:
    """Everything the no-spend checks found."""

    baseline: Answer
    calibration: Answer | None
    names_first: bool  # the gateway reports an unknown name before the invalid duration
    fields: tuple[FieldCheck, ...]
    not_checked: tuple[str, ...]  # wire names inside list items
    creations_sent: int
    created: tuple[Answer, ...] = field(default=())  # answers that created a task
    provider: str = GATEWAY
    unknown_task: tuple[Lookup, ...] = ()

    @property
    def paid_risk(self) -> tuple[Answer, ...]:
        """Creations that made a task which may have rendered (and been billed)."""
        return tuple(answer for answer in self.created if not answer.harmless)


def _wire_names(manifest: Manifest, dialect: Dialect) -> dict[str, str | None]:
    """Each body field's name as sent: the manifest's ``api.wire`` renames apply to the
    gateway only (``validate`` refuses them with another provider)."""
    if dialect.provider != GATEWAY:
        return {name: name for name in dialect.fields}
    renames = normalise_renames(manifest.api.wire)
    names = {name: renames.get(name, name) for name in TOP_LEVEL_FIELDS}
    names.update({name: renames.get(name, name) for name in ELEMENT_FIELDS})
    return names


def _extra_fields(manifest: Manifest, dialect: Dialect) -> dict[str, Any]:
    """Every key of the shots' ``extra`` that is not a documented field, with one value."""
    found: dict[str, Any] = {}
    for take in manifest.takes:
        for key, value in take.request.extra.items():
            if key not in TOP_LEVEL_FIELDS and key not in dialect.fields and key not in found:
                found[key] = value
    return found


class Probes:
    """The bodies of the no-spend creations, in the provider's words (for the gateway, as
    the manifest names them on the wire)."""

    def __init__(self, manifest: Manifest, dialect: Dialect = GATEWAY_DIALECT) -> None:
        self.dialect = dialect
        self.names = _wire_names(manifest, dialect)
        self.model = dialect.model_value(manifest.api.model)
        self.extra = _extra_fields(manifest, dialect)

    def wire(self, name: str) -> str | None:
        return self.names.get(name, name)

    def base(self, *, with_prompt: bool = True) -> dict[str, Any]:
        """The fields every body carries, with the invalid duration: refused by its rule."""
        body: dict[str, Any] = {}
        for name in self.dialect.in_base:
            value: Any = {"prompt": NEUTRAL_PROMPT if with_prompt else None,
                          "duration": self.dialect.invalid_duration}.get(name, self.model)
            wire = self.wire(name)
            if wire is not None and value is not None:
                body[wire] = value
        return body

    def value(self, name: str) -> Any:
        """A well-typed value for ``name``, so that only its name can be at issue."""
        if name in self.extra:
            return self.extra[name]
        if name == "elements" and self.dialect.provider == GATEWAY:
            element: dict[str, Any] = {}
            for inner, value in (("frontal_image_url", PROBE_IMAGE_URL),
                                 ("reference_image_urls", [])):
                wire = self.wire(inner)
                if wire is not None:
                    element[wire] = value
            return [element]
        return self.dialect.values[name]

    def carrying(self, name: str) -> dict[str, Any]:
        """The base body plus ``name`` and the fields that must travel with it (multi-shot
        fields replace the prompt, as they must)."""
        body = self.base(with_prompt=name not in self.dialect.replace_prompt)
        for other in (*self.dialect.companions.get(name, ()), name):
            wire = self.wire(other) if other not in self.extra else other
            if wire is not None:
                body[wire] = self.value(other)
        return body

    def calibration(self) -> dict[str, Any]:
        return {**self.base(), UNKNOWN_FIELD: True}

    def probed(self) -> list[tuple[str, str]]:
        """(name, source) of every field checked on its own request."""
        renamed = {name for name, wire in self.names.items() if wire != name}
        found = [(name, "api.wire" if name in renamed else "documented")
                 for name in self.dialect.fields if name not in self.dialect.in_base]
        found += [(name, "extra") for name in self.extra]
        return found


async def asked_again(ask: Callable[[], Awaitable[T]], backoff: BackoffPolicy | None = None,
                      tries: int = _TRANSIENT_TRIES) -> T:
    """``ask()``, asked again after a 429 or a 5xx (up to ``tries`` times in all): the
    probe's questions create nothing, and one passing hiccup must not become a verdict."""
    policy = backoff or _FREE_BACKOFF
    for attempt in range(tries):
        try:
            return await ask()
        except TransientGatewayError as exc:
            if attempt + 1 == tries:
                raise
            wait = exc.retry_after
            await asyncio.sleep(policy.delay(attempt, wait))
    raise AssertionError("unreachable")  # pragma: no cover


async def refused_creation(gateway: GatewayClient, body: Mapping[str, Any],
                           backoff: BackoffPolicy | None = None,
                           dialect: Dialect = GATEWAY_DIALECT) -> Answer:
    """Send one creation invalid on purpose, in the provider's words, and say what came back.

    A refused key and an URL that is not the gateway raise (the whole probe stops on
    them); a 429 or a 5xx is asked again (a refused creation costs nothing); an answer that
    never came is ``status None``.
    """
    policy = backoff or _FREE_BACKOFF
    for attempt in range(_TRANSIENT_TRIES):
        try:
            state, _ = await gateway.create_native(body)
        except (AuthenticationFailed, GatewayUnreachable):
            raise
        except AmbiguousSubmission as exc:
            return Answer(status=None, message=redact(exc.message))
        except MalformedResponse as exc:
            created = exc.status is not None and 200 <= exc.status < 300
            return Answer(status=exc.status, message=redact(exc.message), created=created)
        except TransientGatewayError as exc:
            if attempt + 1 == _TRANSIENT_TRIES or exc.status is None:
                return Answer(status=exc.status, code=exc.code, message=redact(exc.message))
            wait = exc.retry_after
            await asyncio.sleep(policy.delay(attempt, wait))
        except GatewayError as exc:
            message = redact(exc.message)
            return Answer(status=exc.status, code=exc.code,
                          param=dialect.param(exc.param, message, body), message=message)
        else:
            log.info("probe_creation_accepted", task_id=state.task_id)
            return Answer(status=200, task_id=state.task_id, created=True,
                          message=f"{dialect.label} created a task from a body invalid on "
                          "purpose")
    raise AssertionError("unreachable")  # pragma: no cover


async def settle_queued(gateway: GatewayClient, answer: Answer, *,
                        wait: float = QUEUED_WAIT,
                        clock: Callable[[], float] | None = None) -> Answer:
    """What became of a creation fal.ai queued instead of refusing: cancelled at once
    (docs/providers.md documents the cancel), else followed until it ends or ``wait`` passes.

    fal.ai documents no synchronous validation: a queue may accept any input and refuse it
    on its runner. A request with a duration of 0 cannot render, but only its end says so.
    """
    if not isinstance(gateway, FalClient) or answer.task_id is None:
        return answer
    now = clock or time.monotonic
    task_id = answer.task_id
    notes: list[str] = []
    try:
        status, reply = await gateway.cancel(task_id)
        notes.append(f"cancel answered HTTP {status} {reply.get('status') or ''}".strip())
    except GatewayError as exc:
        notes.append(f"cancel failed: {redact(exc.message)}")
    deadline = now() + wait
    delay = 0.2
    while True:
        try:
            state = await gateway.get_task(task_id)
        except GatewayError as exc:
            return replace(answer, outcome=STILL_QUEUED, outcome_detail="; ".join(
                [*notes, f"its status could not be read: {redact(exc.message)}"]))
        if state.status == "failed":
            why = redact(state.error_message or "no message").rstrip(". ")
            outcome = CANCELLED if "cancel" in why.lower() else ENDED_FAILED
            return replace(answer, outcome=outcome,
                           outcome_detail="; ".join([*notes, f"it ended: {why}"]))
        if state.status == "completed":
            return replace(answer, outcome=ENDED_DONE, outcome_detail="; ".join(
                [*notes, "it ended WITH A VIDEO: fal.ai rendered a duration of 0 as "
                 "something, and may bill it"]))
        if now() >= deadline:
            return replace(answer, outcome=STILL_QUEUED, outcome_detail="; ".join(
                [*notes, f"still {state.status} after {wait:g} s: see request {task_id} in "
                 "the fal.ai dashboard"]))
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def _unknown_id(provider: str) -> str:
    """An id nobody created, shaped as the provider's own (a malformed one may be refused
    for its shape, which says nothing of how an unknown task reads): Kling's long numbers,
    fal's UUIDs, the gateway's ``task-unified-<epoch>-<8 letters>``."""
    if provider == KLING:
        return "9" + "".join(secrets.choice(string.digits) for _ in range(17))
    if provider == FAL:
        return str(uuid.uuid4())
    letters = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return f"task-unified-{int(time.time())}-{letters}"


async def unknown_task(gateway: GatewayClient, dialect: Dialect) -> tuple[Lookup, ...]:
    """Ask about a task nobody created (see :class:`Lookup`); free, and it sends nothing
    that could create one."""
    found: list[Lookup] = []
    fake = _unknown_id(dialect.provider)
    try:
        state = await asked_again(lambda: gateway.get_task(fake))
        found.append(Lookup(f"task {fake}", False, 200, None,
                            f"answered as a task ({state.status}) for an id nobody created"))
    except (AuthenticationFailed, GatewayUnreachable):
        raise
    except PermanentGatewayError as exc:
        found.append(Lookup(f"task {fake}", True, exc.status, exc.code, redact(exc.message)))
    except GatewayError as exc:
        found.append(Lookup(f"task {fake}", False, exc.status, exc.code, redact(exc.message)))
    if isinstance(gateway, ResolvesLostAnswers):  # the scheduler's own test (lost.py)
        external = "shotrun-probe-" + secrets.token_hex(12)
        asked = f"external_task_id {external}"
        try:
            task = await asked_again(lambda: gateway.resolve_lost({CLIENT_TASK_ID: external}))
        except (AuthenticationFailed, GatewayUnreachable):
            raise
        except GatewayError as exc:
            found.append(Lookup(asked, False, exc.status, exc.code, redact(exc.message)))
        else:
            found.append(Lookup(asked, task is None, 200 if task else 404, None,
                                "not found" if task is None else
                                f"answered as task {task.task_id}"))
    return tuple(found)


def _template(answer: Answer, name: str) -> str:
    return answer.message.replace(name, "\0")


def _refusal(answer: Answer) -> bool:
    """A refusal of the request as invalid: 400 (the gateway, the Kling API) or 422 (fal.ai's
    validation errors)."""
    return answer.status in (400, 422)


def _names_unknown(answer: Answer, name: str, calibration: Answer | None) -> bool:
    """The answer refuses ``name`` as a name (not its value)."""
    if not _refusal(answer) or answer.param != name:
        return False
    if calibration is not None and calibration.param == UNKNOWN_FIELD and \
            _template(answer, name) == _template(calibration, UNKNOWN_FIELD):
        return True
    # The name itself left out, as a whole word: a field called "extra_key" is no evidence.
    words = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "", answer.message)
    return bool(_UNKNOWN_WORDS.search(words))


def judge(name: str, wire: str, answer: Answer, *, duration: str | None,
          calibration: Answer | None, names_first: bool) -> tuple[str, str]:
    """(verdict, why) for the field sent as ``wire`` from the answer to its probe."""
    if answer.created:
        return ACCEPTED, "a task was CREATED from this body (it may be billed)"
    if answer.status is None:
        return UNSURE, "no answer came back"
    if _names_unknown(answer, wire, calibration):
        return REFUSED, "refused as an unknown field"
    if _refusal(answer) and answer.param == wire:
        if name == "duration":
            return ACCEPTED, "its value was judged (a duration of 0, invalid on purpose)"
        return UNSURE, "refused, but not in the words used for an unknown name"
    if _refusal(answer) and duration is not None and answer.param == duration:
        if names_first:
            return ACCEPTED, NAMES_FIRST_WHY
        return UNSURE, NAMES_LATER_WHY
    what = f"HTTP {answer.status}" + (f" about '{answer.param}'" if answer.param else "")
    return UNSURE, f"the answer ({what}) says nothing about this field"


def _pace(submit_rate: float) -> float:
    return 1.0 / submit_rate if submit_rate > 0 else 0.0


async def run_checks(gateway: GatewayClient, manifest: Manifest, *,
                     submit_rate: float = 2.0, backoff: BackoffPolicy | None = None,
                     dialect: Dialect = GATEWAY_DIALECT,
                     queued_wait: float = QUEUED_WAIT) -> Checks:
    """Make the no-spend checks (see the module docstring) in ``dialect``'s words; raise on
    a refused key or an URL that is not the provider."""
    probes = Probes(manifest, dialect)
    duration = probes.wire("duration")
    gap = _pace(submit_rate)
    sent = 0
    created: list[Answer] = []

    async def ask(body: Mapping[str, Any]) -> Answer:
        nonlocal sent
        if sent and gap:
            await asyncio.sleep(gap)
        sent += 1
        answer = await refused_creation(gateway, body, backoff, dialect)
        if answer.created:
            answer = await settle_queued(gateway, answer, wait=queued_wait)
            created.append(answer)
        return answer

    def checks_of(baseline: Answer, calibration: Answer | None, names_first: bool,
                  fields: Sequence[FieldCheck], lookups: tuple[Lookup, ...]) -> Checks:
        return Checks(baseline, calibration, names_first, tuple(fields), not_checked, sent,
                      tuple(created), dialect.provider, lookups)

    not_checked = tuple(wire for name in dialect.inner if (wire := probes.wire(name)))
    if duration is None:  # no invalid body can be made: a creation would be a real one
        unsent = Answer(status=None, message="not asked: api.wire leaves duration out, so "
                        "no creation can be made invalid on purpose")
        return checks_of(unsent, None, False, (), ())
    baseline = await ask(probes.base())
    lookups = await unknown_task(gateway, dialect)
    if baseline.created:  # not refused at once: send no more creations
        return checks_of(baseline, None, False, (), lookups)
    calibration = await ask(probes.calibration())
    names_first = _refusal(calibration) and calibration.param == UNKNOWN_FIELD
    checks: list[FieldCheck] = []
    for name in dialect.in_base:
        wire = probes.wire(name)
        if wire is None:
            checks.append(FieldCheck(name, None, "api.wire", LEFT_OUT,
                                     "api.wire leaves it out of every body"))
            continue
        verdict, why = judge(name, wire, baseline, duration=duration,
                             calibration=calibration, names_first=names_first)
        source = "api.wire" if wire != name else "documented"
        checks.append(FieldCheck(name, wire, source, verdict, why, baseline))
    for name, source in probes.probed():
        wire = probes.wire(name) if source != "extra" else name
        if wire is None:
            checks.append(FieldCheck(name, None, source, LEFT_OUT,
                                     "api.wire leaves it out of every body"))
            continue
        if created:  # an earlier body was accepted: stop spending
            checks.append(FieldCheck(name, wire, source, UNSURE,
                                     "not asked: an earlier invalid body was accepted"))
            continue
        answer = await ask(probes.carrying(name))
        verdict, why = judge(name, wire, answer, duration=duration, calibration=calibration,
                             names_first=names_first)
        checks.append(FieldCheck(name, wire, source, verdict, why, answer))
    return checks_of(baseline, calibration, names_first, checks, lookups)


def summary_counts(fields: Sequence[FieldCheck]) -> dict[str, int]:
    """How many fields got each verdict."""
    counts: dict[str, int] = {}
    for item in fields:
        counts[item.verdict] = counts.get(item.verdict, 0) + 1
    return counts
