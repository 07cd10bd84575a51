"""The lines a user types to render against a running ``shotrun emulator``, exactly.

``shotrun emulator`` prints them on stderr as it starts serving (``tests/docs`` runs them
as printed).
"""

from __future__ import annotations

from collections.abc import Iterable

from runner.core.money import unit_of, unit_word
from runner.wire.specs import GATEWAY, spec


def how_to_use(base_url: str, provider: str = GATEWAY, key_env: str | None = None) -> list[str]:
    """The lines a user types to render against this emulator, exactly.

    A run against a URL (not ``api.base_url: emulator``) reads its key from the environment
    like any real gateway's and stops with "no API key" without one, so the variable the
    provider's runs read comes first: any value unless ``--api-key-env`` made the emulator
    require one. The Kling API needs its access key too (the emulator checks only the
    token's signature, made with the secret key).
    """
    wanted = spec(provider)
    value = f'"${key_env}"' if key_env else "emulator-accepts-any-key"
    lines = [f"export {wanted.key_env}={value}"]
    if wanted.access_key_env:
        lines.append(f"export {wanted.access_key_env}=any-access-key")
    flag = "" if provider == GATEWAY else f" --provider {provider}"
    lines.append(f"shotrun run MANIFEST --base-url {base_url}{flag}")
    return lines


def notes_for(provider: str = GATEWAY) -> list[str]:
    """What the lines of :func:`how_to_use` cannot say: another key variable, and (fal,
    Kling) that a URL is judged a real provider's, which takes images by URL only."""
    notes = ["a manifest naming another api.api_key_env reads that variable instead"]
    if provider != GATEWAY:
        label = spec(provider).label.removeprefix("the ")
        notes.append(f"{label} documents no upload service: against a URL a manifest's images "
                     f"must be http(s) URLs; --base-url emulator --provider {provider} renders "
                     "local ones in-process")
    return notes


def account_notes(accounts: Iterable[tuple[str, int | None, float | None]],
                  provider: str = GATEWAY) -> list[str]:
    """One line per account of ``--account`` (label, concurrency cap, credits): its limits,
    and how a run uses it (the key by its variable, ``$VAR``, never the key itself). Other
    keys are the default account."""
    key_env = spec(provider).key_env
    notes = []
    for label, cap, credits in accounts:
        limits = f"at most {cap} task{'' if cap == 1 else 's'} in flight"
        if credits is not None:
            limits += f", {credits:g} {unit_word(unit_of(provider))} of balance"
        notes.append(f"account {label}: {limits}; a run uses it with "
                     f'export {key_env}="${label}"')
    return notes
