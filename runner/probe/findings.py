"""What ``shotrun probe`` found, as text for a person, JSON for a script, and a profile.

The human report and ``--json`` carry the same facts; the text is grouped in the sections a
user reads before an overnight run (reached, authentication, field names; with ``--spend``:
task, timing, progress, link, video). The profile (:mod:`runner.media.profile`) keeps only what
``plan`` and ``run`` use (the observed sizes) plus the rest as ``details``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from runner.core.isotime import iso_time
from runner.core.model import Manifest
from runner.core.money import RATE_KEYS, format_amount, unit_of
from runner.core.redact import redact_value
from runner.core.words import count
from runner.media.profile import GatewayProfile, derived_sizes, size_key
from runner.probe.checks import (
    LEFT_OUT,
    NAMES_FIRST_WHY,
    NAMES_LATER_WHY,
    Checks,
    summary_counts,
)
from runner.probe.dialects import Dialect, dialect_for
from runner.probe.spend import SPEND_ASPECT, SPEND_RESOLUTION, SPEND_SECONDS, Spent
from runner.wire.specs import KLING

ORDER_REASONS = (NAMES_FIRST_WHY, NAMES_LATER_WHY)  # said once, on the validation-order line


def estimate_line(manifest: Manifest, estimate: float | None) -> str:
    """Said before the paid creation is sent, in the unit the provider bills in (gateway
    credits, Kling units, fal dollars: runner.core.money) from that unit's rates."""
    unit = unit_of(manifest.api.provider)
    rates = f"budget.{RATE_KEYS[unit]}"
    rate = manifest.budget.rates_for(unit).get(SPEND_RESOLUTION)
    cost = (f"about {format_amount(estimate, unit)} ({rates} {SPEND_RESOLUTION}: "
            f"{format_amount(rate, unit, bare=True, short=True)}/s)"
            if estimate is not None and rate is not None else
            f"an unknown cost (no {rates}.{SPEND_RESOLUTION})")
    return (f"spend: creating one task of {SPEND_SECONDS} s {SPEND_RESOLUTION} {SPEND_ASPECT} "
            f"with a neutral prompt and no images, {cost}; not counted in the manifest's "
            "budget")


def _answer_text(status: int | None, param: str | None, code: str | None = None,
                 provider: str = "gateway") -> str:
    if status is None:
        return "no answer"
    kling = f", code {code}" if provider == KLING and code else ""
    return f"HTTP {status}{kling}" + (f" about '{param}'" if param else "")


def _duration_text(dialect: Dialect) -> str:
    value = dialect.invalid_duration
    return f'"{value}"' if isinstance(value, str) else str(value)


def _queued_lines(checks: Checks, dialect: Dialect) -> list[str]:
    """What became of creations that made a task (fal.ai may queue, then refuse)."""
    lines: list[str] = []
    for answer in checks.created:
        what = answer.task_id or "unknown id"
        if answer.harmless:
            lines.append(f"  NOTE: {dialect.label} queued the body invalid on purpose "
                         f"(request {what}) instead of refusing it; {answer.outcome}: "
                         f"{answer.outcome_detail}. It validates later, so field names "
                         "cannot be checked for free here; no further creation was sent")
        else:
            detail = f" ({answer.outcome}: {answer.outcome_detail})" if answer.outcome else ""
            lines.append(f"  WARNING: {dialect.label} CREATED a task from a body invalid on "
                         f"purpose ({what}){detail}: it may be billed; nothing more was sent. "
                         f"This is not how {dialect.label} is documented to behave")
    return lines


def _lookup_lines(checks: Checks, dialect: Dialect) -> list[str]:
    lines = []
    for item in checks.unknown_task:
        answer = _answer_text(item.status, None, item.code, checks.provider)
        if item.asked.startswith("external_task_id") and item.read_as_unknown:
            lines.append(f"lost answers: {item.asked}, which nobody used, is not found "
                         f"({answer}), as a run reads it: a creation whose answer is lost "
                         "is looked up by its id, never paid for twice")
        elif item.read_as_unknown:
            lines.append(f"unknown task: {item.asked}, which nobody created, is refused "
                         f"({answer}): a run reads that as \"{dialect.label} no longer "
                         "knows the task\"")
        else:
            lines.append(f"  WARNING: {item.asked}, which nobody created, got {answer} "
                         f"({item.message}): a run does not read that as \"no such task\", "
                         "so a task the provider forgot would be asked about again and "
                         "again instead of being sent anew")
    return lines


def _reach_lines(checks: Checks, dialect: Dialect, shown_url: str) -> list[str]:
    """Reached, and the key accepted, from the first (baseline) answer."""
    base = checks.baseline
    lines = [f"reached: yes, {shown_url} answered like {dialect.label} "
             f"({_answer_text(base.status, base.param, base.code, checks.provider)} to a "
             f"creation with duration {_duration_text(dialect)}, invalid on purpose)"]
    if base.status == 402:
        lines.append("authentication: key accepted, but the account is out of credits (402)")
    elif base.status is not None:
        refused = "an authentication code 1000-1004" if checks.provider == KLING else "401"
        lines.append(f"authentication: key accepted "
                     f"({_answer_text(base.status, None, base.code, checks.provider)}, not "
                     f"{refused})")
    else:
        lines.append("authentication: could not tell (no answer)")
    return lines


def _field_lines(checks: Checks, dialect: Dialect) -> list[str]:
    """The validation order the calibration showed, then each field's verdict."""
    lines: list[str] = []
    cal = checks.calibration
    if cal is not None:
        order = ("it names an unknown field before the invalid duration, so a field it "
                 "answers about the duration instead is known" if checks.names_first else
                 f"an unknown field got "
                 f"{_answer_text(cal.status, cal.param, cal.code, checks.provider)}: it does "
                 "not name unknown fields first (or ignores them), so names it does not "
                 "refuse outright could not be told")
        lines.append(f"  validation order: {order}")
    width = max((len(item.name) for item in checks.fields), default=8)
    for item in checks.fields:
        sent_as = "" if item.wire in (None, item.name) else f" (sent as {item.wire})"
        source = " [api.wire]" if item.source == "api.wire" else (
            " [shot extra]" if item.source == "extra" else "")
        # The validation-order line explains the common verdict once, for every field.
        why = "" if item.verdict == LEFT_OUT or item.why in ORDER_REASONS else \
            f": {item.why}"
        lines.append(f"  {item.name:<{width}} {item.verdict}{sent_as}{source}{why}")
    if checks.not_checked:
        lines.append(f"  not checked: {', '.join(checks.not_checked)} (inside list items: "
                     "the invalid duration is reported before them)")
    if dialect.not_fields:
        lines.append(f"  not body fields: {dialect.not_fields}")
    if checks.fields:
        counts = summary_counts(checks.fields)
        lines.append("  verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    return lines


def check_lines(checks: Checks, shown_url: str) -> list[str]:
    """The reached / authentication / unknown task / field names sections."""
    if checks.creations_sent == 0:
        return [f"reached: not asked ({checks.baseline.message})"]
    dialect = dialect_for(checks.provider)
    made = (f"{len(checks.created)} created a task" if checks.created
            else "none created a task")
    return [
        *_reach_lines(checks, dialect, shown_url),
        *_lookup_lines(checks, dialect),
        f"field names: {count(checks.creations_sent, 'creation')} invalid on purpose, {made}",
        *_queued_lines(checks, dialect),
        *_field_lines(checks, dialect),
        f"  cost: none, assuming {dialect.cost}",
    ]


def _types(shape: Mapping[str, Any]) -> str:
    fields = ", ".join(f"{path} ({kind})" for path, kind in shape["fields"].items())
    extra = ", ".join(shape["undocumented"]) or "none"
    differ = ", ".join(f"{path} {d['seen']} (documented {d['documented']})"
                       for path, d in shape["types_differ"].items())
    text = f"{fields}; undocumented: {extra}"
    return text + (f"; types differ: {differ}" if differ else "")


def _task_lines(spent: Spent, dialect: Dialect) -> list[str]:
    """The task, the bodies it was described with, and how the provider finds it again."""
    unit = unit_of(dialect.provider)  # each amount in the provider's unit (runner.core.money)
    reserved = (f"no {dialect.credits_word} in the answer" if spent.credits_reserved is None
                else f"{dialect.credits_word} "
                f"{format_amount(spent.credits_reserved, unit, bare=True, short=True)}")
    estimate = ("" if spent.estimate is None else
                f" (estimate {format_amount(spent.estimate, unit, bare=True, short=True)})")
    resumed = " (created by an earlier probe; followed, not created again)" \
        if spent.resumed else ""
    lines = [f"task: {spent.task_id}{resumed}, {reserved}{estimate}, "
             f"statuses {' -> '.join(spent.statuses) or 'none'}"]
    if spent.creation_body is not None:
        lines.append(f"  creation body: {_types(spent.shape([spent.creation_body]))}")
    if spent.query_bodies:
        lines.append(f"  query body: {_types(spent.shape(spent.query_bodies))}")
    if spent.lookup is not None:
        look = spent.lookup
        lines.append(
            f"  found again by external_task_id {look['external_task_id']}: the same task"
            if look["same_task"] else
            f"  WARNING: looking the task up by external_task_id {look['external_task_id']} "
            f"gave {look['found'] or look['error'] or 'nothing'}, not {spent.task_id}: a "
            "run could not resolve a lost creation answer (it would be ambiguous)")
    if spent.status_url is not None:
        urls = spent.status_url
        lines.append(
            "  status URL: the one fal.ai answered is the one shotrun polls" if urls["same"]
            else f"  WARNING: fal.ai answered status_url {urls['answered']} but shotrun polls "
            f"{urls['polled']} (built from the request id, so that a restarted run finds "
            "it); the run worked only if both answer")
    if spent.error:
        lines.append(f"  failed: {spent.error}")
    return lines


def _timing_lines(spent: Spent) -> list[str]:
    """How long it took against the estimate, and what progress the bodies reported."""
    estimated = ("no estimated_time" if spent.estimated_time is None else
                 f"estimated_time {spent.estimated_time:g} s")
    if spent.status == "timeout":
        real = "still rendering when the probe stopped waiting (`shotrun probe --spend` " \
               "again follows it and spends nothing)"
    elif spent.time_high is None:
        real = "real time unknown"
    else:
        real = (f"real between {spent.time_low or 0:.1f} and {spent.time_high:.1f} s (the "
                "creation's send to the poll that saw it end)")
    lines = [f"timing: {estimated}, {real}; "
             f"{count(spent.polls, 'status query', 'status queries')}"]
    if not spent.progress_reported:
        lines.append("progress: none reported (no progress field in any body)")
    else:
        lines.append(f"progress: {', '.join(str(v) for v in spent.progress) or 'no number'}")
    if spent.queue_positions:
        lines.append(f"queue positions: {', '.join(str(v) for v in spent.queue_positions)}")
    return lines


def _link_line(link: Mapping[str, Any], dialect: Dialect) -> str:
    expiry = ", ".join(f"{k}={v}" for k, v in link["expiry_parameters"].items())
    names = ", ".join(link["query_parameters"]) or "none"
    when = f", expires {link['expires_at']}" if link["expires_at"] else ""
    headers = "; ".join(f"{k}: {v}" for k, v in link["headers"].items()) or "none"
    return (f"link: {link['url']} (query parameters: {names}; expiry-looking: "
            f"{expiry or 'none'}{when}); headers: {headers}; {dialect.link_life}")


def _video_line(video: Mapping[str, Any], kept: object) -> str:
    audio = video["audio_codec"] or "no audio"
    fps = "unknown fps" if video["fps"] is None else f"{video['fps']:g} fps"
    return (f"video: {video['width']}x{video['height']}, {video['duration']:g} s, {fps}, "
            f"{video['codec']}, {audio}, {video['bytes']} bytes; kept as {kept}")


def spend_lines(spent: Spent) -> list[str]:
    """The task / timing / progress / link / video sections."""
    dialect = dialect_for(spent.provider)
    lines = [*_task_lines(spent, dialect), *_timing_lines(spent)]
    if spent.link is not None:
        lines.append(_link_line(spent.link, dialect))
    if spent.video is not None:
        lines.append(_video_line(spent.video, spent.kept))
    return lines


def build_profile(spent: Spent, base_url: str, checks: Checks | None) -> GatewayProfile | None:
    """The profile of a paid probe whose video was read; None without a video."""
    if spent.video is None:
        return None
    key = size_key(SPEND_RESOLUTION, SPEND_ASPECT)
    observed = (int(spent.video["width"]), int(spent.video["height"]))
    derived = derived_sizes(key, observed)
    details: dict[str, Any] = {
        "observed_sizes": [key],
        "derived_sizes": sorted(derived),
        "derived_how": f"scaled from {key} as it was observed (long and short side each)",
        "spend": spent.as_json(),
    }
    if checks is not None:
        details["fields"] = [item.as_json() for item in checks.fields]
    return GatewayProfile(base_url=base_url, probed_at=iso_time(time.time()) or "",
                          sizes={key: observed, **derived}, details=redact_value(details))


def document(manifest: Manifest, shown_url: str, built_in: bool, checks: Checks | None,
             spent: Spent | None, profile: str | None, emulator: Mapping[str, Any] | None
             ) -> dict[str, Any]:
    """``probe --json``: the same facts as the text."""
    found: dict[str, Any] = {
        "manifest": str(manifest.path), "provider": manifest.api.provider,
        "base_url": shown_url, "built_in_emulator": built_in,
        "assumed": dialect_for(manifest.api.provider).cost,
    }
    if checks is not None:
        base = checks.baseline
        found.update({
            "reached": checks.creations_sent > 0 and base.status is not None,
            "authentication": {"accepted": base.status is not None and base.status != 401,
                               "status": base.status},
            "creations_sent": checks.creations_sent,
            "creations_accepted": [a.as_json() for a in checks.created],
            "baseline": base.as_json(),
            "calibration": None if checks.calibration is None else checks.calibration.as_json(),
            "names_before_values": checks.names_first,
            "fields": [item.as_json() for item in checks.fields],
            "not_checked": list(checks.not_checked),
            "unknown_task": [item.as_json() for item in checks.unknown_task],
        })
    found["spend"] = None if spent is None else spent.as_json()
    found["profile"] = profile
    if emulator is not None:
        found["emulator"] = {key: emulator.get(key) for key in
                             ("creation_requests", "accepted_tasks", "credits_reserved")}
    result: dict[str, Any] = redact_value(found)
    return result
