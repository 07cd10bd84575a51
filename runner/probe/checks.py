"""The checks ``shotrun probe`` makes without spending: reached, key accepted, field names.

The gateway has no "validate only" endpoint, but it documents that an invalid creation is
answered ``400 invalid_request_error`` (gateway-api.md, "Errors") and that billing starts
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
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from runner.errors import (
    AmbiguousSubmission,
    AuthenticationFailed,
    GatewayError,
    GatewayUnreachable,
    MalformedResponse,
    RateLimited,
    TransientGatewayError,
)
from runner.gateway.types import Gateway
from runner.model import Manifest
from runner.redact import redact
from runner.scheduler.backoff import BackoffPolicy
from runner.wire import ELEMENT_FIELDS, TOP_LEVEL_FIELDS, normalise_renames

log = structlog.get_logger()

NEUTRAL_PROMPT = "A still, empty room in soft daylight; nothing moves."
#: A name no gateway documents: the calibration of the validation order.
UNKNOWN_FIELD = "shotrun_probe_no_such_field"
#: Never fetched: the creations carrying it are refused before any image is looked at.
PROBE_IMAGE_URL = "https://example.com/shotrun-probe.png"
PROBE_CALLBACK_URL = "https://example.com/shotrun-probe-callback"
INVALID_DURATION = 0
IN_BASE = ("model", "prompt", "duration")  # the fields every probe body carries
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

NAMES_FIRST_WHY = ("the gateway went on to judge the duration, and it names an unknown field "
                   "before that")

NAMES_LATER_WHY = ("the answer is about the invalid duration, and this gateway does not name "
                   "an unknown field before it (or ignores unknown fields)")

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

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "param": self.param,
                "message": self.message, "created": self.created, "task_id": self.task_id}


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
    not_checked: tuple[str, ...]  # wire names inside ``elements``
    creations_sent: int
    created: tuple[Answer, ...] = field(default=())  # answers that created a task

    @property
    def auth_status(self) -> int | None:
        return self.baseline.status


def _wire_names(manifest: Manifest) -> dict[str, str | None]:
    renames = normalise_renames(manifest.api.wire)
    names = {name: renames.get(name, name) for name in TOP_LEVEL_FIELDS}
    names.update({name: renames.get(name, name) for name in ELEMENT_FIELDS})
    return names


def _extra_fields(manifest: Manifest) -> dict[str, Any]:
    """Every key of the shots' ``extra`` that is not a documented field, with one value."""
    found: dict[str, Any] = {}
    for take in manifest.takes:
        for key, value in take.request.extra.items():
            if key not in TOP_LEVEL_FIELDS and key not in found:
                found[key] = value
    return found


class Probes:
    """The bodies of the no-spend creations, named as the manifest names them on the wire."""

    def __init__(self, manifest: Manifest) -> None:
        self.names = _wire_names(manifest)
        self.model = manifest.api.model
        self.extra = _extra_fields(manifest)

    def wire(self, name: str) -> str | None:
        return self.names.get(name, name)

    def base(self, *, with_prompt: bool = True) -> dict[str, Any]:
        """``model``, ``prompt`` and the invalid ``duration``: refused by the duration rule."""
        body: dict[str, Any] = {}
        for name, value in (("model", self.model),
                            ("prompt", NEUTRAL_PROMPT if with_prompt else None),
                            ("duration", INVALID_DURATION)):
            wire = self.wire(name)
            if wire is not None and value is not None:
                body[wire] = value
        return body

    def value(self, name: str) -> Any:
        """A well-typed value for ``name``, so that only its name can be at issue."""
        if name in self.extra:
            return self.extra[name]
        element: dict[str, Any] = {}
        for inner, value in (("frontal_image_url", PROBE_IMAGE_URL),
                             ("reference_image_urls", [])):
            wire = self.wire(inner)
            if wire is not None:
                element[wire] = value
        values: dict[str, Any] = {
            "multi_prompt": [{"prompt": NEUTRAL_PROMPT, "duration": 3}],
            "shot_type": "customize", "resolution": "720p", "aspect_ratio": "16:9",
            "generate_audio": False, "start_image_url": PROBE_IMAGE_URL,
            "end_image_url": PROBE_IMAGE_URL, "image_urls": [PROBE_IMAGE_URL],
            "elements": [element], "callback_url": PROBE_CALLBACK_URL,
        }
        return values[name]

    def carrying(self, name: str) -> dict[str, Any]:
        """The base body plus ``name`` (multi-shot fields replace the prompt, as they must)."""
        multi = name in ("multi_prompt", "shot_type")
        body = self.base(with_prompt=not multi)
        if name == "shot_type":
            wire = self.wire("multi_prompt")
            if wire is not None:
                body[wire] = self.value("multi_prompt")
        wire = self.wire(name) if name not in self.extra else name
        assert wire is not None
        body[wire] = self.value(name)
        return body

    def calibration(self) -> dict[str, Any]:
        return {**self.base(), UNKNOWN_FIELD: True}

    def probed(self) -> list[tuple[str, str]]:
        """(name, source) of every field checked on its own request."""
        renamed = {name for name, wire in self.names.items() if wire != name}
        found = [(name, "api.wire" if name in renamed else "documented")
                 for name in TOP_LEVEL_FIELDS if name not in IN_BASE]
        found += [(name, "extra") for name in self.extra]
        return found


async def refused_creation(gateway: Gateway, body: Mapping[str, Any],
                           backoff: BackoffPolicy | None = None) -> Answer:
    """Send one creation invalid on purpose and say what came back.

    A refused key and an URL that is not the gateway raise (the whole probe stops on
    them); a 429 or a 5xx is asked again (a refused creation costs nothing); an answer that
    never came is ``status None``.
    """
    policy = backoff or BackoffPolicy(base=0.5, cap=5.0, retry_after_cap=30.0)
    for attempt in range(_TRANSIENT_TRIES):
        try:
            state = await gateway.create_task(body)
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
            wait = exc.retry_after if isinstance(exc, RateLimited) else None
            await asyncio.sleep(policy.delay(attempt, wait))
        except GatewayError as exc:
            return Answer(status=exc.status, code=exc.code, param=exc.param,
                          message=redact(exc.message))
        else:
            log.warning("probe_creation_accepted", task_id=state.task_id)
            return Answer(status=200, task_id=state.task_id, created=True,
                          message="the gateway created a task from a body invalid on purpose")
    raise AssertionError("unreachable")  # pragma: no cover


def _template(answer: Answer, name: str) -> str:
    return answer.message.replace(name, "\0")


def _names_unknown(answer: Answer, name: str, calibration: Answer | None) -> bool:
    """The answer refuses ``name`` as a name (not its value)."""
    if answer.status != 400 or answer.param != name:
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
        return ACCEPTED, "the gateway CREATED a task from this body (it may be billed)"
    if answer.status is None:
        return UNSURE, "no answer came back"
    if _names_unknown(answer, wire, calibration):
        return REFUSED, "the gateway refused it as an unknown field"
    if answer.status == 400 and answer.param == wire:
        if name == "duration":
            return ACCEPTED, "the gateway judged its value (0, invalid on purpose)"
        return UNSURE, "the gateway refused it, but not in the words it uses for an unknown name"
    if answer.status == 400 and duration is not None and answer.param == duration:
        if names_first:
            return ACCEPTED, NAMES_FIRST_WHY
        return UNSURE, NAMES_LATER_WHY
    what = f"HTTP {answer.status}" + (f" about '{answer.param}'" if answer.param else "")
    return UNSURE, f"the answer ({what}) says nothing about this field"


def _pace(submit_rate: float) -> float:
    return 1.0 / submit_rate if submit_rate > 0 else 0.0


async def run_checks(gateway: Gateway, manifest: Manifest, *, submit_rate: float = 2.0,
                     backoff: BackoffPolicy | None = None) -> Checks:
    """Make the no-spend checks (see the module docstring); raise on a refused key or an
    URL that is not the gateway."""
    probes = Probes(manifest)
    duration = probes.wire("duration")
    gap = _pace(submit_rate)
    sent = 0
    created: list[Answer] = []

    async def ask(body: Mapping[str, Any]) -> Answer:
        nonlocal sent
        if sent and gap:
            await asyncio.sleep(gap)
        sent += 1
        answer = await refused_creation(gateway, body, backoff)
        if answer.created:
            created.append(answer)
        return answer

    not_checked = tuple(wire for name in ELEMENT_FIELDS if (wire := probes.wire(name)))
    if duration is None:  # no invalid body can be made: a creation would be a real one
        unsent = Answer(status=None, message="not asked: api.wire leaves duration out, so "
                        "no creation can be made invalid on purpose")
        return Checks(unsent, None, False, (), not_checked, 0)
    baseline = await ask(probes.base())
    if baseline.created:  # not the documented gateway: send nothing more
        return Checks(baseline, None, False, (), not_checked, sent, tuple(created))
    calibration = await ask(probes.calibration())
    names_first = calibration.status == 400 and calibration.param == UNKNOWN_FIELD
    checks: list[FieldCheck] = []
    for name in IN_BASE:
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
                                     "not asked: the gateway accepted an earlier invalid body"))
            continue
        answer = await ask(probes.carrying(name))
        verdict, why = judge(name, wire, answer, duration=duration, calibration=calibration,
                             names_first=names_first)
        checks.append(FieldCheck(name, wire, source, verdict, why, answer))
    return Checks(baseline, calibration, names_first, tuple(checks), not_checked, sent,
                  tuple(created))


def summary_counts(fields: Sequence[FieldCheck]) -> dict[str, int]:
    """How many fields got each verdict."""
    counts: dict[str, int] = {}
    for item in fields:
        counts[item.verdict] = counts.get(item.verdict, 0) + 1
    return counts
