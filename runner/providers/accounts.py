"""The provider accounts this runner can send with: the ones whose key it holds.

``api.accounts`` names each account's key by the variable that holds it. A studio's machines
need not all hold every key: a runner uses the accounts whose variable is set here and never
takes the seats of the others (their tasks are collected by a runner that holds the key).
The first usable account's key is the run's main key (:func:`choose_config`); each other one
gets its own client, made like the main one (:func:`account_clients`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from runner.core.model import Account, Manifest
from runner.core.redact import register_secret
from runner.providers.session import ClientLimits, RunConfig, Session, read_access_key
from runner.wire.protocol import Gateway


@dataclass(frozen=True)
class HeldAccount:
    """An account whose key this runner holds."""

    account: Account
    api_key: str = field(repr=False)


def choose_config(manifest: Manifest, config: RunConfig,
                  environ: Mapping[str, str] | None = None) -> RunConfig:
    """``config`` reading the key of the first listed account whose variable is set (so a
    runner holding only the second account's key still runs); unchanged without a list."""
    env = os.environ if environ is None else environ
    if not manifest.api.named_accounts:
        return config
    for account in manifest.accounts:
        if env.get(account.api_key_env, "").strip():
            return dataclasses.replace(
                config, api_key_env=account.api_key_env,
                access_key_env=account.access_key_env or config.access_key_env)
    return config


def held_accounts(manifest: Manifest, main_key: str,
                  environ: Mapping[str, str] | None = None, *,
                  built_in: bool = False) -> list[HeldAccount]:
    """The accounts this runner can send with, in the manifest's order, the first with
    ``main_key`` (the run's key: the first held account's, or the built-in emulator's).

    ``built_in``: the run's own emulator, which knows one key only (its fresh ``main_key``):
    every listed account sends with it, so a manifest of several accounts tries out as is."""
    if built_in:
        return [HeldAccount(account, main_key) for account in manifest.accounts]
    env = os.environ if environ is None else environ
    held: list[HeldAccount] = []
    if manifest.api.named_accounts:
        for account in manifest.accounts:
            key = env.get(account.api_key_env, "").strip()
            if key:
                register_secret(key)
                held.append(HeldAccount(account, key))
    if not held or held[0].api_key != main_key:  # the implicit account, or the emulator's key
        held = [HeldAccount(manifest.accounts[0] if not held else held[0].account, main_key),
                *held[1:]]
    return held


@asynccontextmanager
async def account_clients(session: Session, held: list[HeldAccount],
                          limits: ClientLimits | None = None
                          ) -> AsyncIterator[dict[str, Gateway]]:
    """``{account name: client}``: the session's own client for the first account, a client
    of its own for each other one (same provider and URLs), closed at the end."""
    from runner.providers.clients import make_client

    limits = limits or ClientLimits()
    options: dict[str, Any] = {"timeouts": limits.timeouts,
                               "max_result_bytes": limits.max_result_bytes}
    clients: dict[str, Gateway] = {held[0].account.name: session.gateway}
    made: list[Any] = []
    try:
        for other in held[1:]:
            config = dataclasses.replace(
                session.config, api_key_env=other.account.api_key_env,
                access_key_env=other.account.access_key_env or session.config.access_key_env)
            client = make_client(session.config.provider, session.base_url,
                                 session.files_url or session.base_url, other.api_key,
                                 read_access_key(config), **options)
            made.append(client)
            clients[other.account.name] = client
        yield clients
    finally:
        for client in made:
            await client.close()
