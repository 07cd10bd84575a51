"""Pass 2, manifest-wide rules, and the top-level settings they allow.

The per-shot rules live with the code that builds takes (:mod:`.takes`), because checking a
shot and resolving it are the same walk. Here are the rules about the manifest as a whole:
wire renames that would clash, emulator settings that would be ignored, unused variables; and
the frozen :class:`~runner.core.model.ApiConfig` and :class:`~runner.core.model.Budget` built from
what
pass 1 allowed. Environment overrides (``SHOTRUN_BASE_URL``...) are *not* applied here: the run
engine applies them, so that ``validate`` and ``plan`` show the manifest as written. (Where a
run sends does decide one check, local images on fal.ai or the Kling API: see
:func:`runner.manifest.load_manifest`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.core.model import (
    MODEL_ID,
    SIZE_POLICIES,
    ApiConfig,
    Budget,
    VerifyPolicy,
    frozen_mapping,
)
from runner.core.money import CAP_KEYS, DEFAULT_RATES_BY_UNIT, RATE_KEYS
from runner.manifest.context import Context, get_int, get_map, get_number, get_str, plain
from runner.wire.payload import ELEMENT_FIELDS, LOGICAL_TO_WIRE, TOP_LEVEL_FIELDS
from runner.wire.specs import GATEWAY, PROVIDERS, spec


def check_wire(ctx: Context) -> dict[str, str | None]:
    """The ``api.wire`` renames, after refusing those that would clash on the wire."""
    api = get_map(ctx.root, "api")
    renames = get_map(api, "wire")
    if renames is None or not ctx.ok(("api", "wire")):
        return {}
    by_field: dict[str, str] = {}  # documented wire name -> the key renaming it
    for key in renames:
        field = LOGICAL_TO_WIRE.get(key, key)
        if field in by_field:
            ctx.error(("api", "wire", key), f"'{key}' and '{by_field[field]}' both rename the "
                      f"wire field {field}; keep one of them", key=True)
            continue
        by_field[field] = key
    for namespace in (TOP_LEVEL_FIELDS, ELEMENT_FIELDS):
        sent: dict[str, str] = {}
        for field in namespace:
            renamer = by_field.get(field)
            name: str | None = renames[renamer] if renamer is not None else field
            if name is None:
                continue
            if name in sent:
                ctx.error(("api", "wire", renamer or sent[name]), f"two fields would be sent as "
                          f"'{name}' ({sent[name]} and {field}); choose different names")
                continue
            sent[name] = field
    return {key: renames[key] for key in renames}


def provider_of(ctx: Context, override: str | None = None) -> str:
    """The provider that renders: ``override`` (flag or environment) or ``api.provider``."""
    if override is not None:
        return override
    api = get_map(ctx.root, "api")
    written = get_str(api, "provider") if ctx.ok(("api", "provider")) else None
    return written if written in PROVIDERS else GATEWAY


def check_api(ctx: Context, provider: str = GATEWAY) -> None:
    """Warn about settings that would be silently ignored; refuse renames of fixed fields."""
    api = get_map(ctx.root, "api")
    if api is None:
        return
    base_url = get_str(api, "base_url") or spec(provider).base_url or "emulator"
    if "emulator" in api and base_url != "emulator":
        ctx.warn(("api", "emulator"), "emulator settings are ignored: api.base_url is not "
                                      "`emulator`")
    if provider != GATEWAY and get_map(api, "wire"):
        ctx.error(("api", "wire"), f"api.wire renames the gateway's fields; {spec(provider).label}"
                  "'s field names are fixed by its documentation (shotrun translates every "
                  "shot to them): remove api.wire or use provider: gateway", key=True)


def variables(ctx: Context) -> dict[str, str]:
    """``vars`` as the strings they become in prompts (``true``, ``5``, ``2.5``)."""
    found: dict[str, str] = {}
    for name, value in (get_map(ctx.root, "vars") or {}).items():
        if not ctx.ok(("vars", name)):
            continue
        if isinstance(value, bool):
            found[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            found[name] = str(value)
    return found


def check_unused(ctx: Context, defined: dict[str, str], used: set[str]) -> None:
    """Warn about variables no prompt uses (often a typo on one side)."""
    for name in defined:
        if name not in used:
            ctx.warn(("vars", name), f"variable '{name}' is never used in a prompt")


def api_config(ctx: Context, renames: dict[str, str | None],
               provider: str = GATEWAY) -> ApiConfig:
    """The frozen API settings, with built-in defaults for what the manifest leaves out.

    The defaults of the URL and of the key's variable are the provider's (docs/providers.md: fal's
    queue and ``FAL_KEY``; Kling's API and ``KLING_SECRET_KEY``); the gateway's stay the
    built-in emulator and ``SHOTRUN_API_KEY``.
    """
    api = get_map(ctx.root, "api")
    chosen = spec(provider)
    defaults = ApiConfig(base_url=chosen.base_url or ApiConfig().base_url,
                         api_key_env=chosen.key_env)

    def ok(name: str) -> Any:
        return api if ctx.ok(("api", name)) else None

    emulator = get_map(api, "emulator") if ctx.ok(("api", "emulator")) else None
    key_env = get_str(ok("api_key_env"), "api_key_env")
    return ApiConfig(
        base_url=get_str(ok("base_url"), "base_url") or defaults.base_url,
        files_url=get_str(ok("files_url"), "files_url"),
        api_key_env=key_env or defaults.api_key_env,
        api_key_env_set=bool(key_env),
        model=get_str(ok("model"), "model") or MODEL_ID,
        concurrency=get_int(ok("concurrency"), "concurrency") or defaults.concurrency,
        submit_rate=get_number(ok("submit_rate"), "submit_rate") or defaults.submit_rate,
        downloads=get_int(ok("downloads"), "downloads") or defaults.downloads,
        download_timeout=get_number(ok("download_timeout"), "download_timeout"),
        min_download_rate=get_number(ok("min_download_rate"), "min_download_rate"),
        provider=provider,
        wire=frozen_mapping(renames),
        emulator=frozen_mapping(plain(emulator) if emulator is not None else None),
    )


def budget(ctx: Context) -> Budget:
    """The frozen budget: a cap and rates per unit of money, the rates merged over the
    built-in ones (``rates``: gateway credits, ``unit_rates``: Kling units, ``usd_rates``:
    fal dollars; runner.core.money)."""
    data = get_map(ctx.root, "budget")
    found: dict[str, Any] = {}
    for unit, rates_key in RATE_KEYS.items():
        rates = dict(DEFAULT_RATES_BY_UNIT[unit])
        given = get_map(data, rates_key) if ctx.ok(("budget", rates_key)) else None
        for key, value in (given or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                rates[key] = float(value)
        found[rates_key] = frozen_mapping(rates)
        cap_key = CAP_KEYS[unit]
        found[cap_key] = get_number(data, cap_key) if ctx.ok(("budget", cap_key)) else None
    return Budget(**found)


def verify_policy(ctx: Context) -> VerifyPolicy:
    """The ``verify`` section (its values are checked by the schema; a bad one is located)."""
    data = get_map(ctx.root, "verify")
    size = get_str(data, "size") if ctx.ok(("verify", "size")) else None
    return VerifyPolicy(size=size) if size in SIZE_POLICIES else VerifyPolicy()


def output_dir(ctx: Context, name: str) -> Path:
    """Where outputs go: ``output_dir`` or ``renders/<name>``, relative to the manifest."""
    written = get_str(ctx.root, "output_dir") if ctx.ok(("output_dir",)) else None
    path = Path(written).expanduser() if written else Path("renders") / name
    return path if path.is_absolute() else ctx.base_dir / path


def store_url(ctx: Context) -> str | None:
    """``state.url``: the PostgreSQL store (its scheme checked by the schema, a password
    refused by :mod:`.secrets`), or None for the embedded SQLite file."""
    state = get_map(ctx.root, "state")
    return get_str(state, "url") if ctx.ok(("state", "url")) else None
