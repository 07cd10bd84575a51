"""What a clip on an editor's timeline says about where it came from (``metadata["shotrun"]``).

An editor who finds a shot they like, weeks later in an NLE, needs to get back to the take:
which shot and take it is, whether someone picked it, the prompt that made it (as sent, after
``@name`` references became ``@Image1``/``@Element1``), the fingerprint that identifies the
render, the gateway's task id, what it cost, the SHA-256 of the file, its tags and the
outputs of other shots it was cut from. OTIO keeps this in the ``.otio`` as it is; the FCP XML
carries the main facts as FCP 7 logging info (scene, shot/take, description, log note),
which NLEs that read it show in their bins.

Everything passes through :func:`runner.core.redact.redact_value`: the prompt is the manifest's
text, and the key never leaves shotrun, even when a prompt somehow holds it.
"""

from __future__ import annotations

from typing import Any

from runner.core.redact import redact_value
from runner.views.export.chosen import Clip
from runner.views.export.select import Missing

NAMESPACE = "shotrun"


def prompt_text(clip: Clip) -> str:
    """The prompt as sent; a multi-prompt take's segments one per line."""
    request = clip.chosen.take.request
    if request.multi_prompt:
        return "\n".join(segment.prompt for segment in request.multi_prompt)
    return request.prompt or ""


def clip_metadata(clip: Clip) -> dict[str, Any]:
    """The ``shotrun`` metadata of one clip (JSON values only: OTIO stores them as they are)."""
    chosen, record = clip.chosen, clip.chosen.record
    request = chosen.take.request
    data: dict[str, Any] = {
        "id": chosen.take.key,
        "shot": chosen.shot_id,
        "take": record.take,
        "chosen": True,
        "picked": chosen.picked,
        "prompt": prompt_text(clip),
        "multi_prompt": (
            [{"prompt": s.prompt, "duration": s.duration} for s in request.multi_prompt]
            if request.multi_prompt else None
        ),
        "fingerprint": record.fingerprint,
        "task_id": record.task_id,
        "credits": record.credits,
        "sha256": record.sha256,
        "tags": list(chosen.take.tags),
        "from_shot": [{"shot": shot, "sha256": sha} for shot, sha in chosen.sources],
        "file": chosen.name,
        "frames": clip.frames,
        "rate": clip.rate,
    }
    redacted: dict[str, Any] = redact_value(data)
    return redacted


def gap_metadata(missing: Missing) -> dict[str, Any]:
    """The ``shotrun`` metadata of a gap: which shot belongs there."""
    return {"shot": missing.shot_id, "rendered": False, "seconds": missing.seconds}


def logging_info(clip: Clip) -> dict[str, str]:
    """FCP 7 XML ``<logginginfo>`` (shown by Premiere and Resolve in their bins)."""
    record = clip.chosen.record
    note = (f"shotrun {clip.chosen.take.key}{' picked' if clip.chosen.picked else ''}; "
            f"fingerprint {record.fingerprint}; task {record.task_id or '-'}; "
            f"sha256 {record.sha256}")
    info = {
        "description": prompt_text(clip),
        "scene": clip.chosen.shot_id,
        "shottake": str(record.take),
        "lognote": note,
    }
    redacted: dict[str, str] = redact_value(info)
    return redacted
