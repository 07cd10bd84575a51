"""Everything a run needs before its first request: settings resolved, key read, gateway open.

Precedence (docs/manifest.md): command-line flags > environment (``SHOTRUN_BASE_URL``,
``SHOTRUN_FILES_URL``, the key variable) > manifest > built-in defaults. Resolving that in one
place means ``run``, ``status`` and the benchmarks can never disagree about where a run goes.

The API key is read from the variable the manifest *names* (``api.api_key_env``), never from
a file, and registered with :mod:`runner.core.redact` the moment it is read so that no log line,
exception or report can carry it. ``api.base_url: emulator`` starts the built-in gateway in
this process (on a loopback port) with a freshly generated key: a demo needs no account.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from runner.core.errors import UsageError
from runner.core.model import Manifest
from runner.core.money import unit_of
from runner.core.redact import register_secret
from runner.wire.protocol import Gateway
from runner.wire.specs import ENV_BASE_URL, chosen_base_url, spec

log = structlog.get_logger()

EMULATOR = "emulator"
ENV_FILES_URL = "SHOTRUN_FILES_URL"


@dataclass(frozen=True, slots=True)
class Overrides:
    """Settings given on the command line; ``None`` means "not given"."""

    base_url: str | None = None
    files_url: str | None = None
    concurrency: int | None = None
    submit_rate: float | None = None
    downloads: int | None = None
    max_credits: float | None = None


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The settings a run uses, after precedence. Holds no key: only the variable's name."""

    base_url: str  # "emulator" or an http(s) URL
    files_url: str | None  # None: the base URL (or the emulator's file service)
    api_key_env: str
    concurrency: int
    submit_rate: float
    downloads: int
    max_credits: float | None
    base_url_from: str  # "flag", "environment", "manifest" or "default": for messages
    provider: str = "gateway"  # runner.wire.specs: who renders (in the manifest's fingerprints)
    access_key_env: str | None = None  # Kling: the NAME of the access key's variable
    api_key_env_set: bool = False  # the manifest names api_key_env (else the provider's default)

    @property
    def key_env_origin(self) -> str:
        """`` (named by api.api_key_env)`` after the variable's name in a message when the
        manifest named it, else nothing: the provider's default is no setting to look for."""
        return " (named by api.api_key_env)" if self.api_key_env_set else ""

    @property
    def key_source(self) -> str:
        """Where the credentials come from, for a message about a refused key (the
        variables' names, never their values)."""
        also = (f" and the access key from {self.access_key_env}"
                if self.access_key_env else "")
        return f"the environment variable {self.api_key_env}{self.key_env_origin}{also}"

    @property
    def uses_emulator(self) -> bool:
        """True when the built-in emulator is the gateway."""
        return self.base_url == EMULATOR


def _check_url(value: str, what: str, *, allow_emulator: bool) -> str:
    value = value.strip()
    if allow_emulator and value == EMULATOR:
        return value
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        # Never echoed: what sits before the @ may be a secret.
        raise UsageError(f"{what} must not carry credentials (user:password@); the key "
                         "comes from the environment variable named by api.api_key_env")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = "`emulator` or " if allow_emulator else ""
        raise UsageError(f"{what} must be {hint}an http(s) URL, got {value!r}")
    return value.rstrip("/")


def check_base_url_flag(value: str | None) -> None:
    """Refuse a ``--base-url`` that ``run`` would refuse, in a command that does not send
    (``plan``, ``validate``): it decides what they check, so nonsense there is an error too."""
    if value:
        _check_url(value, "--base-url", allow_emulator=True)


def resolve_config(manifest: Manifest, overrides: Overrides | None = None,
                   environ: Mapping[str, str] | None = None) -> RunConfig:
    """Apply flags > environment > manifest > defaults; raise UsageError for bad values."""
    flags = overrides or Overrides()
    env = os.environ if environ is None else environ
    api = manifest.api
    chosen = chosen_base_url(flags.base_url, env)
    if chosen is None:
        base_url, source = api.base_url, "manifest"
    else:
        base_url, source = chosen, "flag" if flags.base_url else "environment"
    where = {"flag": "--base-url", "environment": ENV_BASE_URL,
             "manifest": f"{manifest.path}: api.base_url"}[source]
    base_url = _check_url(base_url, where, allow_emulator=True)
    files_url: str | None
    if flags.files_url:
        files_url = _check_url(flags.files_url, "--files-url", allow_emulator=False)
    elif env.get(ENV_FILES_URL):
        files_url = _check_url(env[ENV_FILES_URL], ENV_FILES_URL, allow_emulator=False)
    elif api.files_url and source == "manifest":
        # A manifest's files_url belongs with the manifest's base_url: when the base URL was
        # overridden (for example to point at a test gateway), follow it.
        files_url = _check_url(api.files_url, f"{manifest.path}: api.files_url",
                               allow_emulator=False)
    else:
        files_url = None
    concurrency = flags.concurrency if flags.concurrency is not None else api.concurrency
    submit_rate = flags.submit_rate if flags.submit_rate is not None else api.submit_rate
    downloads = flags.downloads if flags.downloads is not None else api.downloads
    # The cap of the unit the provider bills in (runner.core.money): --max-credits overrides it.
    max_credits = (flags.max_credits if flags.max_credits is not None
                   else manifest.budget.cap(unit_of(api.provider)))
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {concurrency}")
    if downloads < 1:
        raise UsageError(f"--downloads must be at least 1, got {downloads}")
    if submit_rate < 0:
        raise UsageError(f"--submit-rate must not be negative, got {submit_rate}")
    if max_credits is not None and max_credits < 0:
        raise UsageError(f"--max-credits must not be negative, got {max_credits}")
    return RunConfig(
        base_url=base_url, files_url=files_url, api_key_env=api.api_key_env,
        concurrency=concurrency, submit_rate=submit_rate, downloads=downloads,
        max_credits=max_credits, base_url_from=source, provider=api.provider,
        access_key_env=spec(api.provider).access_key_env, api_key_env_set=api.api_key_env_set,
    )


def read_api_key(config: RunConfig, environ: Mapping[str, str] | None = None) -> str:
    """The key from the environment (registered as a secret), or a fresh one for the emulator.

    A real gateway without a key is a usage error that names the variable to set; the value
    itself is never echoed.
    """
    env = os.environ if environ is None else environ
    key = env.get(config.api_key_env, "").strip()
    label = spec(config.provider).label
    if not key:
        if config.uses_emulator:
            key = "emu-" + secrets.token_urlsafe(24)
        else:
            what = "secret key" if config.access_key_env else "key"
            raise UsageError(
                f"no API key: set the environment variable {config.api_key_env}"
                f"{config.key_env_origin} to your {label.removeprefix('the ')} {what}, "
                f"or use --base-url emulator to try {_built_in(config.provider)}"
            )
    register_secret(key)
    read_access_key(config, env)  # Kling: both keys or nothing is sent
    return key


def _built_in(provider: str) -> str:
    """The emulator of ``provider`` as the key messages offer it (the access key's says "the
    built-in Kling API": one provider, one name)."""
    label = spec(provider).label.removeprefix("the ")
    return f"the built-in {label}" + (" emulator" if provider == "fal" else "")


def read_access_key(config: RunConfig, environ: Mapping[str, str] | None = None
                    ) -> str | None:
    """Kling's access key (registered as a secret), a fresh one for the emulator; None for
    a provider that has none."""
    if config.access_key_env is None:
        return None
    env = os.environ if environ is None else environ
    key = env.get(config.access_key_env, "").strip()
    if not key:
        if config.uses_emulator:
            # The emulator checks the token's signature (the secret key), not its issuer.
            key = "emu-access-" + secrets.token_urlsafe(12)
        else:
            raise UsageError(
                f"no access key: set the environment variable {config.access_key_env} to "
                f"your Kling access key (beside {config.api_key_env}, the secret key), or "
                f"use --base-url emulator to try {_built_in(config.provider)}")
    register_secret(key)
    return key


@dataclass(frozen=True, slots=True)
class Session:
    """An open gateway (and the emulator behind it, when built in) for one run."""

    config: RunConfig
    gateway: Gateway
    base_url: str  # the URL actually used (the emulator's loopback address when built in)
    emulator: Any | None = None  # the running emulator handle (``.stats()``), when built in
    files_url: str = ""  # the file service actually used


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """The gateway client's limits (``run``'s network flags); None: the client's defaults."""

    timeouts: Any = None  # a runner.providers.gateway.timeouts.ClientTimeouts
    max_result_bytes: int = 2 * 1024**3


def emulator_settings(manifest: Manifest, api_key: str) -> Any:
    """The emulator's settings from ``api.emulator``, with this run's generated key.

    A bad ``api.emulator`` section is a usage error naming the manifest, not a traceback.
    """
    from runner.emulator import EmulatorSettings

    try:
        settings = EmulatorSettings.from_mapping(dict(manifest.api.emulator))
        return settings.replace(api_key=api_key)
    except ValueError as exc:
        raise UsageError(f"{manifest.path}: api.emulator: {exc}") from None


def prepare(manifest: Manifest, overrides: Overrides | None = None
            ) -> tuple[RunConfig, str]:
    """The settings and the key of a command that talks to the gateway (``run``, ``probe``).

    Everything that can be wrong with them (a bad URL, no key, a bad ``api.emulator``) is a
    usage error raised here, before anything is sent or written.
    """
    from runner.providers.accounts import choose_config  # it imports this module

    # With api.accounts, the main key is the first listed account's whose variable is set:
    # a machine holding only the second account's key runs with it.
    config = choose_config(manifest, resolve_config(manifest, overrides))
    api_key = read_api_key(config)
    if config.uses_emulator:
        emulator_settings(manifest, api_key)
    return config, api_key


@asynccontextmanager
async def open_session(manifest: Manifest, config: RunConfig, api_key: str,
                       limits: ClientLimits | None = None) -> AsyncIterator[Session]:
    """Start the emulator if the config says so, and open the provider's client."""
    from runner.providers.clients import make_client

    limits = limits or ClientLimits()
    options: dict[str, Any] = {"timeouts": limits.timeouts,
                               "max_result_bytes": limits.max_result_bytes}
    provider = config.provider
    access_key = read_access_key(config)

    if config.uses_emulator:
        from runner.emulator import run_emulator

        settings = emulator_settings(manifest, api_key)
        async with run_emulator(settings, host="127.0.0.1", port=0,
                                provider=provider) as emulator:
            log.info("emulator_started", base_url=emulator.base_url, provider=provider)
            client = make_client(provider, emulator.base_url, emulator.files_url, api_key,
                                 access_key, **options)
            try:
                yield Session(config, client, emulator.base_url, emulator,
                              emulator.files_url)
            finally:
                await client.close()
        return
    files_url = config.files_url or config.base_url
    client = make_client(provider, config.base_url, files_url, api_key, access_key, **options)
    try:
        yield Session(config, client, config.base_url, files_url=files_url)
    finally:
        await client.close()
