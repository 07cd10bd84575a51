"""What ``shotrun probe`` says and sends differently to the gateway, fal.ai and the Kling API.

The probe's method is the same everywhere (creations invalid on purpose by one documented
rule, a duration of 0; a calibration with a name nobody documents; one creation per field;
with ``--spend``, one cheapest task followed to the end). What differs is written here once
per provider, from its documentation (docs/gateway-api.md, docs/providers.md):

* the body's field names, a well-typed value for each, the fields that must travel together
  (a multi-shot segment list with its switch) and the ones every probe body carries;
* the invalid duration as the provider types it (``0``; ``"0"`` where durations are strings);
* how an answer names the field it is about: the gateway's ``param``, fal's validation
  ``loc``; the Kling API names none, so there the field is read from the message, and only
  when it names exactly one field of the body sent;
* what the documentation says a refusal costs and how long a result link lives, which the
  report says beside what it saw;
* the answer fields the documentation shows, with their JSON types where it gives them.

Pure data and pure functions: nothing here sends anything.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.core.model import MODEL_ID
from runner.wire import kling as kling_wire
from runner.wire.payload import ELEMENT_FIELDS, TOP_LEVEL_FIELDS
from runner.wire.specs import FAL, GATEWAY, KLING, spec

NEUTRAL_PROMPT = "A still, empty room in soft daylight; nothing moves."
#: Never fetched: the creations carrying them are refused before any media is looked at.
PROBE_IMAGE_URL = "https://example.com/shotrun-probe.png"
PROBE_VIDEO_URL = "https://example.com/shotrun-probe.mp4"
PROBE_CALLBACK_URL = "https://example.com/shotrun-probe-callback"

# What docs/gateway-api.md shows of a task body, with the JSON types of its example.
GATEWAY_ANSWER: Mapping[str, str | None] = {
    "created": "integer", "id": "string", "model": "string", "object": "string",
    "progress": "integer", "status": "string", "type": "string", "task_info": "object",
    "task_info.can_cancel": "boolean", "task_info.estimated_time": "integer",
    "task_info.video_duration": "integer", "usage": "object",
    "usage.billing_rule": "string", "usage.credits_reserved": "number",
    "usage.user_group": "string", "results": "array", "results[]": "string",
    "error": "object", "error.code": "string", "error.message": "string",
}
# docs/providers.md names these fields without giving their types (None: any type is the
# documentation's). fal's status and result answers are read as one body (FalClient).
FAL_ANSWER: Mapping[str, str | None] = {
    "request_id": None, "status_url": None, "response_url": None, "cancel_url": None,
    "status": None, "queue_position": None, "video": "object", "video.url": None,
    "video.content_type": None, "video.file_name": None, "video.file_size": None,
}
KLING_ANSWER: Mapping[str, str | None] = {
    "code": None, "message": None, "request_id": None, "data": "object",
    "data.task_id": None, "data.task_status": None, "data.task_status_msg": None,
    "data.task_info": "object", "data.task_info.external_task_id": None,
    "data.final_unit_deduction": None, "data.created_at": None, "data.updated_at": None,
    "data.task_result": "object", "data.task_result.videos": "array",
    "data.task_result.videos[]": "object", "data.task_result.videos[].id": None,
    "data.task_result.videos[].url": None, "data.task_result.videos[].duration": None,
}

ANSWER_FIELDS: Mapping[str, Mapping[str, str | None]] = {
    GATEWAY: GATEWAY_ANSWER, FAL: FAL_ANSWER, KLING: KLING_ANSWER}

_GATEWAY_COST = (
    "a creation the gateway refuses as invalid (HTTP 400) creates no task and costs nothing: "
    "that is the documented gateway (billing starts when a task is created). A gateway that "
    "bills refusals, or reads a duration of 0 as its default, would have charged for them")
_FAL_COST = (
    "a submission fal.ai refuses (HTTP 422) is queued nowhere and renders nothing; fal.ai "
    "documents no charge rule for refusals, and prices by the seconds of video made. A "
    "submission it queues instead is cancelled at once, or followed until it fails")
_KLING_COST = (
    "a creation the Kling API refuses creates no task, and the Kling API documents that "
    "failed tasks are not charged")


@dataclass(frozen=True)
class Dialect:
    """One provider's words, for the probe (see the module docstring)."""

    provider: str
    fields: tuple[str, ...]  # the body's top-level fields, in report order
    in_base: tuple[str, ...]  # carried by every probe body (judged by the baseline)
    invalid_duration: Any
    values: Mapping[str, Any]  # a well-typed value per field (beside in_base)
    companions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    replace_prompt: frozenset[str] = frozenset()  # fields whose probe leaves prompt out
    inner: tuple[str, ...] = ()  # names inside list items: not judged
    not_fields: str = ""  # what the provider takes outside the body, said in the report
    names_in_message: bool = False  # answers name no field: read it from the message
    cost: str = _GATEWAY_COST
    link_life: str = "the documentation says 24 h"
    credits_word: str = "credits reserved"

    @property
    def label(self) -> str:
        """How messages name the provider ("the gateway", "fal.ai", "the Kling API")."""
        return spec(self.provider).label

    def model_value(self, model: str) -> str:
        """The value of the model field for the manifest's ``api.model``."""
        if self.provider == KLING:
            return kling_wire.MODEL_NAME if model == MODEL_ID else model
        return model

    def param(self, named: str | None, message: str, body: Mapping[str, Any]) -> str | None:
        """The field an answer is about: the one it names, or (Kling) the only field of
        ``body`` its message names as a whole word; None when that is not one field."""
        if not self.names_in_message:
            return named
        found = [name for name in body
                 if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message)]
        return found[0] if len(found) == 1 else None


def _gateway_values() -> dict[str, Any]:
    return {
        "multi_prompt": [{"prompt": NEUTRAL_PROMPT, "duration": 3}],
        "shot_type": "customize", "resolution": "720p", "aspect_ratio": "16:9",
        "generate_audio": False, "start_image_url": PROBE_IMAGE_URL,
        "end_image_url": PROBE_IMAGE_URL, "image_urls": [PROBE_IMAGE_URL],
        "callback_url": PROBE_CALLBACK_URL,
        # elements: built with the manifest's api.wire names (checks.Probes)
    }


GATEWAY_DIALECT = Dialect(
    GATEWAY,
    fields=TOP_LEVEL_FIELDS,
    in_base=("model", "prompt", "duration"), invalid_duration=0, values=_gateway_values(),
    companions={"shot_type": ("multi_prompt",)},
    replace_prompt=frozenset({"multi_prompt", "shot_type"}),
    inner=ELEMENT_FIELDS,
)

FAL_DIALECT = Dialect(
    FAL,
    fields=("prompt", "multi_prompt", "shot_type", "generate_audio", "start_image_url",
            "end_image_url", "image_urls", "elements", "aspect_ratio", "duration"),
    in_base=("prompt", "duration"), invalid_duration="0",
    values={"multi_prompt": [{"prompt": NEUTRAL_PROMPT, "duration": "3"}],
            "shot_type": "customize", "generate_audio": False,
            "start_image_url": PROBE_IMAGE_URL, "end_image_url": PROBE_IMAGE_URL,
            "image_urls": [PROBE_IMAGE_URL], "aspect_ratio": "16:9",
            "elements": [{"frontal_image_url": PROBE_IMAGE_URL,
                          "reference_image_urls": []}]},
    companions={"shot_type": ("multi_prompt",)},
    replace_prompt=frozenset({"multi_prompt", "shot_type"}),
    inner=("frontal_image_url", "reference_image_urls", "video_url"),
    not_fields="the tier is the app's path (standard, pro, 4k) and the webhook the query "
    "parameter fal_webhook: neither is a body field",
    cost=_FAL_COST, link_life="fal.ai documents no lifetime",
    credits_word="credits",
)


def _kling_values() -> dict[str, Any]:
    return {
        "image_list": [{"image_url": PROBE_IMAGE_URL}],
        "video_list": [{"video_url": PROBE_VIDEO_URL, "refer_type": "feature"}],
        "element_list": [{"element_id": 1}],
        "mode": "std", "aspect_ratio": "16:9", "sound": "off",
        "callback_url": PROBE_CALLBACK_URL,
        # a fresh id per probe: a refused creation takes none, but no two probes share one
        "external_task_id": "shotrun-probe-" + secrets.token_hex(12),
        "multi_shot": True, "shot_type": "customize",
        "multi_prompt": [{"index": 1, "prompt": NEUTRAL_PROMPT, "duration": "3"}],
    }


_MULTI = ("multi_shot", "shot_type", "multi_prompt")


def kling_dialect() -> Dialect:
    """The Kling API's words (a fresh ``external_task_id`` value each time)."""
    return Dialect(
        KLING,
        fields=("model_name", "prompt", "multi_shot", "shot_type", "multi_prompt",
                "image_list", "video_list", "element_list", "mode", "aspect_ratio",
                "duration", "sound", "callback_url", "external_task_id"),
        in_base=("model_name", "prompt", "duration"), invalid_duration="0",
        values=_kling_values(),
        companions={name: tuple(other for other in _MULTI if other != name)
                    for name in _MULTI},
        replace_prompt=frozenset(_MULTI),
        inner=("image_url", "type", "video_url", "refer_type", "element_id", "index"),
        names_in_message=True, cost=_KLING_COST,
        link_life="the Kling API says outputs are deleted after 30 days",
        credits_word="units deducted",
    )


def dialect_for(provider: str) -> Dialect:
    """The probe's words for ``provider``."""
    if provider == KLING:
        return kling_dialect()
    if provider == FAL:
        return FAL_DIALECT
    return GATEWAY_DIALECT
