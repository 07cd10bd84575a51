"""``api.accounts``: the provider accounts a team sends through, checked and frozen.

A provider limits concurrency per account (Kling shares one quota between all keys of an
account), so a team that buys several accounts names each one here: a label, the variable
holding its key, its own concurrency and submit rate (by default ``api``'s). Without the
list there is one implicit account, ``default``, made of ``api.api_key_env``,
``api.concurrency`` and ``api.submit_rate``: what every manifest meant before.

The schema checks each entry's shape; here are the rules across entries: two accounts with
one name would mix up which key polls which task, and two with one variable would be one
account counted twice (twice its concurrency at the provider).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from runner.core.model import Account, ApiConfig
from runner.manifest.context import Context, get_int, get_list, get_map, get_number, get_str
from runner.manifest.nodes import KeyPath
from runner.wire.specs import KLING, spec

_KLING_ACCESS = spec(KLING).access_key_env or "KLING_ACCESS_KEY"


def with_accounts(ctx: Context, api: ApiConfig) -> ApiConfig:
    """``api`` with the accounts ``api.accounts`` names (unchanged when it names none).

    Its ``api_key_env`` becomes the first account's variable, so what reads one key (a
    ``probe``, a run before it knows seats) reads a key the manifest names; a written
    ``api.api_key_env`` beside the list is then unused, and said so.
    """
    named = named_accounts(ctx, api)
    if not named:
        return api
    if api.api_key_env_set:
        ctx.warn(("api", "api_key_env"), "not used: api.accounts names each account's "
                 "key variable; remove it")
    return dataclasses.replace(api, named_accounts=named, api_key_env=named[0].api_key_env,
                               api_key_env_set=False)


def named_accounts(ctx: Context, api: ApiConfig) -> tuple[Account, ...]:
    """The accounts ``api.accounts`` names (() when it names none), after reporting two that
    share a name, a key variable or (on the Kling API) an access key variable; ``api`` gives
    the defaults of their limits and the provider."""
    entries = get_list(get_map(ctx.root, "api"), "accounts")
    if entries is None:
        return ()
    found: list[Account] = []
    seen = _Seen()
    kling = api.provider == KLING
    for index, entry in enumerate(entries):
        where: KeyPath = ("api", "accounts", index)
        name = _value(ctx, entry, where, "name")
        variable = _value(ctx, entry, where, "api_key_env")
        access = _value(ctx, entry, where, "access_key_env")
        if name is None or variable is None:
            continue
        first = seen.names.setdefault(name, index)
        if first != index:
            line = ctx.location(("api", "accounts", first)).line
            ctx.error((*where, "name"), f"account name '{name}' is already used on line "
                      f"{line}; give each account its own name")
        first = seen.variables.setdefault(variable, index)
        if first != index:
            ctx.error((*where, "api_key_env"), f"{variable} already holds the key of "
                      f"{_at(ctx, first)}; one key is one account: give this account the "
                      "variable that holds its own key, or remove it")
        if kling:
            _check_access(ctx, where, access, seen.access_variables)
        elif access is not None:
            ctx.warn((*where, "access_key_env"), f"not used: only the Kling API has access "
                     f"keys, and {spec(api.provider).label} renders")
        found.append(Account(
            name=name,
            api_key_env=variable,
            concurrency=get_int(entry, "concurrency") or api.concurrency,
            submit_rate=get_number(entry, "submit_rate") or api.submit_rate,
            access_key_env=access if kling else None,
        ))
    return tuple(found)


@dataclass
class _Seen:
    """The index of the first entry of ``api.accounts`` holding each value, by field."""

    names: dict[str, int] = field(default_factory=dict)
    variables: dict[str, int] = field(default_factory=dict)
    access_variables: dict[str, int] = field(default_factory=dict)


def _value(ctx: Context, entry: Any, where: KeyPath, key: str) -> str | None:
    """A string field of an entry, unless pass 1 refused it: an entry with a refused field
    still takes part, since its other values can repeat."""
    return get_str(entry, key) if ctx.ok((*where, key)) else None


def _check_access(ctx: Context, where: KeyPath, access: str | None,
                  seen: dict[str, int]) -> None:
    """On the Kling API a key is a pair, and the access key names the account (the token's
    issuer): two accounts reading one access key variable would be one account."""
    variable = access or _KLING_ACCESS
    first = seen.setdefault(variable, int(where[-1]))
    if first == where[-1]:
        return
    given = "" if access else " (the default, as access_key_env is not given)"
    ctx.error((*where, "access_key_env") if access else where,
              f"{variable}{given} already holds the access key of {_at(ctx, first)}; on the "
              "Kling API each account has its own access key: set access_key_env to the "
              "variable that holds this account's")


def _at(ctx: Context, index: int) -> str:
    """``account 'name' (line 12)``: the first entry a repeated value belongs to."""
    entry = ctx.root["api"]["accounts"][index]
    line = ctx.location(("api", "accounts", index)).line
    return f"account '{entry['name']}' (line {line})"
