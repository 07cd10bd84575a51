"""What ``shotrun probe`` found, as text for a person, JSON for a script, and a profile.

The human report and ``--json`` carry the same facts; the text is grouped in the sections a
user reads before an overnight run (reached, authentication, field names; with ``--spend``:
task, timing, progress, link, video). The profile (:mod:`runner.profile`) keeps only what
``plan`` and ``run`` use (the observed sizes) plus the rest as ``details``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from runner.isotime import iso_time
from runner.model import Manifest
from runner.probe.checks import (
    INVALID_DURATION,
    LEFT_OUT,
    NAMES_FIRST_WHY,
    NAMES_LATER_WHY,
    Checks,
    summary_counts,
)
from runner.probe.spend import SPEND_ASPECT, SPEND_RESOLUTION, SPEND_SECONDS, Spent, body_shape
from runner.profile import GatewayProfile, derived_sizes, size_key
from runner.redact import redact_value

ORDER_REASONS = (NAMES_FIRST_WHY, NAMES_LATER_WHY)  # said once, on the validation-order line
ASSUMED = ("a creation the gateway refuses as invalid (HTTP 400) creates no task and costs "
           "nothing: that is the documented gateway (billing starts when a task is created). "
           "A gateway that bills refusals, or reads a duration of 0 as its default, would "
           "have charged for them")


def estimate_line(manifest: Manifest, estimate: float | None) -> str:
    """Said before the paid creation is sent."""
    rate = manifest.budget.rates.get(SPEND_RESOLUTION)
    cost = (f"about {estimate:g} credits (budget.rates {SPEND_RESOLUTION}: {rate:g}/s)"
            if estimate is not None and rate is not None else
            f"an unknown cost (no budget.rates.{SPEND_RESOLUTION})")
    return (f"spend: creating one task of {SPEND_SECONDS} s {SPEND_RESOLUTION} {SPEND_ASPECT} "
            f"with a neutral prompt and no images, {cost}; not counted in the manifest's "
            "budget")


def _answer_text(status: int | None, param: str | None) -> str:
    if status is None:
        return "no answer"
    return f"HTTP {status}" + (f" about '{param}'" if param else "")


def check_lines(checks: Checks, shown_url: str) -> list[str]:
    """The reached / authentication / field names sections."""
    base = checks.baseline
    lines: list[str] = []
    if checks.creations_sent == 0:
        return [f"reached: not asked ({base.message})"]
    lines.append(f"reached: yes, {shown_url} answered like the gateway "
                 f"({_answer_text(base.status, base.param)} to a creation with duration "
                 f"{INVALID_DURATION}, invalid on purpose)")
    if base.status == 402:
        lines.append("authentication: key accepted, but the account is out of credits (402)")
    elif base.status is not None:
        lines.append(f"authentication: key accepted (HTTP {base.status}, not 401)")
    else:
        lines.append("authentication: could not tell (no answer)")
    lines.append(f"field names: {checks.creations_sent} creations invalid on purpose, "
                 f"{len(checks.created)} accepted")
    if checks.created:
        ids = ", ".join(a.task_id or "unknown id" for a in checks.created)
        lines.append(f"  WARNING: the gateway CREATED a task from a body invalid on purpose "
                     f"({ids}): it may be billed; nothing more was sent. This is not the "
                     "documented gateway's behaviour")
    cal = checks.calibration
    if cal is not None:
        order = ("it names an unknown field before the invalid duration, so a field it "
                 "answers about the duration instead is known" if checks.names_first else
                 f"an unknown field got {_answer_text(cal.status, cal.param)}: it does not "
                 "name unknown fields first (or ignores them), so names it does not refuse "
                 "outright could not be told")
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
        lines.append(f"  not checked: {', '.join(checks.not_checked)} (inside elements: the "
                     "invalid duration is reported before them)")
    counts = summary_counts(checks.fields)
    lines.append("  verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    lines.append(f"  cost: none, assuming {ASSUMED}")
    return lines


def _types(shape: Mapping[str, Any]) -> str:
    fields = ", ".join(f"{path} ({kind})" for path, kind in shape["fields"].items())
    extra = ", ".join(shape["undocumented"]) or "none"
    differ = ", ".join(f"{path} {d['seen']} (documented {d['documented']})"
                       for path, d in shape["types_differ"].items())
    text = f"{fields}; undocumented: {extra}"
    return text + (f"; types differ: {differ}" if differ else "")


def spend_lines(spent: Spent) -> list[str]:
    """The task / timing / progress / link / video sections."""
    reserved = ("no credits_reserved in the answer" if spent.credits_reserved is None else
                f"credits reserved {spent.credits_reserved:g}")
    estimate = "" if spent.estimate is None else f" (estimate {spent.estimate:g})"
    resumed = " (created by an earlier probe; followed, not created again)" \
        if spent.resumed else ""
    lines = [f"task: {spent.task_id}{resumed}, {reserved}{estimate}, "
             f"statuses {' -> '.join(spent.statuses) or 'none'}"]
    if spent.creation_body is not None:
        lines.append(f"  creation body: {_types(body_shape([spent.creation_body]))}")
    if spent.query_bodies:
        lines.append(f"  query body: {_types(body_shape(spent.query_bodies))}")
    if spent.error:
        lines.append(f"  failed: {spent.error}")
    estimated = ("no estimated_time" if spent.estimated_time is None else
                 f"estimated_time {spent.estimated_time:g} s")
    if spent.status == "timeout":
        real = "still rendering when the probe stopped waiting (`shotrun probe --spend` " \
               "again follows it)"
    elif spent.time_high is None:
        real = "real time unknown"
    else:
        real = (f"real between {spent.time_low or 0:.1f} and {spent.time_high:.1f} s (the "
                "creation's send to the poll that saw it end)")
    lines.append(f"timing: {estimated}, {real}; {spent.polls} status queries")
    if not spent.progress_reported:
        lines.append("progress: none reported (no progress field in any body)")
    else:
        lines.append(f"progress: {', '.join(str(v) for v in spent.progress) or 'no number'}")
    if spent.link is not None:
        link = spent.link
        expiry = ", ".join(f"{k}={v}" for k, v in link["expiry_parameters"].items())
        names = ", ".join(link["query_parameters"]) or "none"
        when = f", expires {link['expires_at']}" if link["expires_at"] else ""
        headers = "; ".join(f"{k}: {v}" for k, v in link["headers"].items()) or "none"
        lines.append(f"link: {link['url']} (query parameters: {names}; expiry-looking: "
                     f"{expiry or 'none'}{when}); headers: {headers}; the documentation "
                     "says 24 h")
    if spent.video is not None:
        video = spent.video
        audio = video["audio_codec"] or "no audio"
        fps = "unknown fps" if video["fps"] is None else f"{video['fps']:g} fps"
        lines.append(f"video: {video['width']}x{video['height']}, {video['duration']:g} s, "
                     f"{fps}, {video['codec']}, {audio}, {video['bytes']} bytes; kept as "
                     f"{spent.kept}")
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
        "manifest": str(manifest.path), "base_url": shown_url, "built_in_emulator": built_in,
        "assumed": ASSUMED,
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
        })
    found["spend"] = None if spent is None else spent.as_json()
    found["profile"] = profile
    if emulator is not None:
        found["emulator"] = {key: emulator.get(key) for key in
                             ("creation_requests", "accepted_tasks", "credits_reserved")}
    result: dict[str, Any] = redact_value(found)
    return result
