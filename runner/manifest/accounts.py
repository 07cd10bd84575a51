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

from runner.core.model import Account, ApiConfig
from runner.manifest.context import Context, get_int, get_list, get_map, get_number, get_str


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
    share a name or a key variable; ``api`` gives the defaults of their limits."""
    entries = get_list(get_map(ctx.root, "api"), "accounts")
    if entries is None:
        return ()
    found: list[Account] = []
    names: dict[str, int] = {}  # name -> the entry's index
    variables: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = ("api", "accounts", index)
        # An entry with a refused field still takes part: its other values can repeat.
        name = get_str(entry, "name") if ctx.ok((*where, "name")) else None
        variable = get_str(entry, "api_key_env") if ctx.ok((*where, "api_key_env")) else None
        if name is None or variable is None:
            continue
        if name in names:
            first = ctx.location(("api", "accounts", names[name])).line
            ctx.error((*where, "name"), f"account name '{name}' is already used on line "
                      f"{first}; give each account its own name")
        else:
            names[name] = index
        if variable in variables:
            ctx.error((*where, "api_key_env"), f"{variable} already holds the key of "
                      f"{_at(ctx, variables[variable])}; one key is one account: give this "
                      "account the variable that holds its own key, or remove it")
        else:
            variables[variable] = index
        found.append(Account(
            name=name,
            api_key_env=variable,
            concurrency=get_int(entry, "concurrency") or api.concurrency,
            submit_rate=get_number(entry, "submit_rate") or api.submit_rate,
        ))
    return tuple(found)


def _at(ctx: Context, index: int) -> str:
    """``account 'name' (line 12)``: the first entry a repeated value belongs to."""
    entry = ctx.root["api"]["accounts"][index]
    line = ctx.location(("api", "accounts", index)).line
    return f"account '{entry['name']}' (line {line})"
