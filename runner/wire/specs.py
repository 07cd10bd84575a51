"""Who renders: the gateway shotrun was written for, fal.ai's queue API, or the official Kling API.

The manifest language is the same for all three (one shot list renders on any of them); what
differs is said here once, per provider, so that the manifest checks, the session and the
CLI never disagree about it:

* the documented base URL (the gateway has none: its users name theirs), the environment
  variables holding the credentials;
* the client module that speaks the provider's wire format behind the scheduler's
  :class:`~runner.wire.protocol.Gateway` Protocol (:mod:`.kling`, :mod:`.fal`; the gateway's
  is :mod:`runner.providers.gateway.client`);
* the limits that differ from the gateway's (:mod:`.limits`), found by ``validate``.

Precedence of the choice, as for every setting (docs/manifest.md): ``--provider`` >
``SHOTRUN_PROVIDER`` > ``api.provider`` > ``gateway``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.core.errors import UsageError
from runner.core.redact import register_secret

if TYPE_CHECKING:
    from runner.core.model import Manifest

GATEWAY, FAL, KLING = "gateway", "fal", "kling"
PROVIDERS = (GATEWAY, FAL, KLING)
ENV_PROVIDER = "SHOTRUN_PROVIDER"
ENV_BASE_URL = "SHOTRUN_BASE_URL"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What a provider's documentation fixes (docs/providers.md) and what shotrun calls it."""

    name: str
    label: str  # in messages: "the gateway", "fal.ai", "the Kling API"
    base_url: str | None  # the documented URL; None: the manifest's default (emulator)
    key_env: str  # the variable of the key (Kling: the secret key)
    access_key_env: str | None = None  # Kling only: the access key, the JWT's issuer
    # How long after a task finishes its result can still be fetched, as documented: the
    # gateway's links live 24 h, Kling deletes outputs after 30 days, fal.ai says nothing
    # (None: only the provider's answer ends it). Until then a paid task is collected, never
    # created again (runner.state.decide.decide).
    result_lifetime: float | None = 24 * 3600.0


SPECS: Mapping[str, ProviderSpec] = {
    GATEWAY: ProviderSpec(GATEWAY, "the gateway", None, "SHOTRUN_API_KEY"),
    FAL: ProviderSpec(FAL, "fal.ai", "https://queue.fal.run", "FAL_KEY", result_lifetime=None),
    KLING: ProviderSpec(KLING, "the Kling API", "https://api-singapore.klingai.com",
                        "KLING_SECRET_KEY", access_key_env="KLING_ACCESS_KEY",
                        result_lifetime=30 * 24 * 3600.0),
}


def spec(name: str) -> ProviderSpec:
    """The spec of a provider named as the manifest names it."""
    return SPECS[name]


def add_flag(parser: Any) -> None:
    """``--provider`` on a command that loads a manifest (argparse refuses other values)."""
    parser.add_argument("--provider", choices=PROVIDERS, default=None,
                        help=f"who renders: {', '.join(PROVIDERS)} (overrides "
                        f"{ENV_PROVIDER} and api.provider; part of every take's fingerprint)")


def chosen(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The provider the command line or the environment asks for, or None (the manifest's).

    A ``SHOTRUN_PROVIDER`` that names no provider is a usage error (exit 2, nothing sent):
    falling back to the manifest's would render, and pay, somewhere the user did not mean.
    """
    if flag:
        return flag
    env = os.environ if environ is None else environ
    value = env.get(ENV_PROVIDER, "").strip()
    if not value:
        return None
    if value not in PROVIDERS:
        raise UsageError(f"{ENV_PROVIDER}={value!r} names no provider; use one of "
                         f"{', '.join(PROVIDERS)}")
    return value


def other_provider_note(last: str | None, current: str) -> str | None:
    """The warning for a command that reads a store the last run filled for another
    provider than the one it loads the manifest for (every take would look changed)."""
    if last is None or last == current or last not in SPECS:
        return None
    return (f"the last run rendered with {SPECS[last].label} (--provider {last}), but this "
            f"reads the manifest for {SPECS[current].label}: every take looks changed; add "
            f"--provider {last} (or set {ENV_PROVIDER}={last})")


def chosen_base_url(flag: str | None = None, environ: Mapping[str, str] | None = None
                    ) -> str | None:
    """The base URL ``--base-url`` or ``SHOTRUN_BASE_URL`` asks for, or None (the manifest's).

    One function for :func:`runner.providers.session.resolve_config` and the manifest's
    checks, so that what a run checks a manifest against (local images on fal.ai or the Kling
    API) is where it sends.
    """
    env = os.environ if environ is None else environ
    return flag or env.get(ENV_BASE_URL) or None


def register_environment_secrets(manifest: Manifest,
                                 environ: Mapping[str, str] | None = None) -> None:
    """Register the manifest's credentials as they stand in the environment (the key's
    variable, and Kling's access key too) for a command that sends nothing but shows
    manifest text (``review``, ``export``): a key pasted into a prompt never reaches a page
    or a file."""
    env = os.environ if environ is None else environ
    names = (manifest.api.api_key_env, spec(manifest.api.provider).access_key_env)
    for name in names:
        if name:
            register_secret(env.get(name))
