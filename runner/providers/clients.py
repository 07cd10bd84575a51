"""The client of each provider, built from the run's settings and credentials.

Kept apart from :mod:`runner.wire.specs` so that loading a manifest (which needs only the
providers' names and limits) does not import aiohttp and the HTTP clients.
"""

from __future__ import annotations

from typing import Any

from runner.wire.protocol import Gateway
from runner.wire.specs import FAL, KLING


def make_client(provider: str, base_url: str, files_url: str | None, api_key: str,
                access_key: str | None = None, **options: Any) -> Gateway:
    """The :class:`~runner.wire.protocol.Gateway` speaking ``provider``'s wire format.

    ``api_key`` is the gateway's key, fal's ``FAL_KEY`` or Kling's secret key; Kling also
    needs its ``access_key`` (the JWT's issuer).
    """
    if provider == KLING:
        from runner.providers.kling_client import KlingClient

        if not access_key:
            raise ValueError("the Kling API needs an access key")
        return KlingClient(base_url, files_url, access_key, api_key, **options)
    if provider == FAL:
        from runner.providers.fal_client import FalClient

        return FalClient(base_url, files_url, api_key, **options)
    from runner.providers.gateway.client import GatewayClient

    return GatewayClient(base_url, files_url, api_key, **options)
