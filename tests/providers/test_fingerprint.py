"""The provider in a take's identity: absent for the gateway (nothing renders again), present
for the others (moving a manifest renders it again), and named as the reason."""

from __future__ import annotations

from runner.core.model import TakeRequest
from runner.state.decide import change_reason
from runner.wire.payload import (
    build_payload,
    fingerprint,
    fingerprint_payload,
    fingerprint_resolver,
)

REQUEST = TakeRequest(prompt="a lighthouse at dawn", multi_prompt=None)


def test_the_gateways_fingerprint_and_payload_are_as_they_always_were() -> None:
    assert fingerprint(REQUEST) == fingerprint(REQUEST, provider="gateway")
    assert fingerprint_payload(REQUEST) == build_payload(REQUEST, fingerprint_resolver)
    assert "provider" not in fingerprint_payload(REQUEST, provider="gateway")


def test_another_provider_is_another_take_and_the_reason_says_so() -> None:
    prints = {p: fingerprint(REQUEST, provider=p) for p in ("gateway", "fal", "kling")}
    assert len(set(prints.values())) == 3
    gateway = fingerprint_payload(REQUEST)
    kling = fingerprint_payload(REQUEST, provider="kling")
    assert kling == {**gateway, "provider": "kling"}
    assert change_reason(gateway, kling) == "provider changed"
    assert change_reason(kling, fingerprint_payload(REQUEST, provider="fal")) == \
        "provider changed"
    edited = fingerprint_payload(TakeRequest(prompt="a storm", multi_prompt=None), provider="kling")
    assert change_reason(kling, edited) == "prompt changed"
