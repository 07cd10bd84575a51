"""What each provider is sent for a canonical payload, side by side (``plan --payloads``,
``probe --spend``): the gateway's payload as it is, Kling's body, fal's app and input.

Apart from :mod:`runner.wire.specs` because it needs every provider's translation, and those
translations need the specs: one module above both keeps the imports one-way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.wire import fal, kling
from runner.wire.specs import FAL, KLING


def body_for(provider: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What ``provider`` is sent for a canonical payload: the payload itself for the gateway,
    Kling's body, or fal's app and input."""
    if provider == KLING:
        return kling.translate(payload)
    if provider == FAL:
        app, body = fal.translate(payload)
        return {"app": app, "input": body}
    return dict(payload)
