"""``shotrun emulator``: serve the local gateway emulator until Ctrl-C.

Prints its base URL on the first line of stdout (scripts read it), and on stderr the exact
lines that render against it (the key variable a run reads, then ``run --base-url``), then
serves. Every
:class:`runner.emulator.EmulatorSettings` field has a flag, so any fault can be tried by hand:
``shotrun emulator --port 8800 --failure-rate 0.2 --error-rate 503=0.1``.

Accounts (``--account KEY_A=2 --account KEY_B=2``) are named by the variables holding their
keys, as ``--api-key-env`` names the one key: a key is never typed on the command line,
printed, or shown in stats (the variable's name is the account's label).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from runner.cli.emulator_recipe import account_notes, how_to_use, notes_for
from runner.core.errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from runner.core.redact import register_secret
from runner.emulator.settings import FAL_VALIDATION_MODES, EmulatorSettings
from runner.wire.specs import GATEWAY, PROVIDERS

_SPEAKS = {"gateway": "the gateway API", "fal": "fal.ai's queue API", "kling": "the Kling API"}


def _pairs(values: list[str] | None, flag: str) -> dict[str, float]:
    pairs: dict[str, float] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            pairs[key.strip()] = float(value)
        except ValueError:
            raise UsageError(f"{flag} expects KEY=NUMBER, got {item!r}") from None
    return pairs


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun emulator``."""
    parser = subparsers.add_parser(
        "emulator",
        help="run the local gateway emulator (no key, no network; spends nothing)",
        description="Serve an emulator of the video gateway on 127.0.0.1, producing real "
        "videos. Point a manifest at it with api.base_url set to the printed URL (or use "
        "api.base_url: emulator to start one in-process).",
    )
    parser.add_argument("--port", type=int, metavar="N", default=0,
                        help="port (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--provider", choices=PROVIDERS, default=GATEWAY,
                        help="the wire format to speak: the gateway's (default), fal.ai's "
                        "queue API or the official Kling API")
    parser.add_argument("--api-key-env", metavar="NAME",
                        help="require the key held by this environment variable (Kling: the "
                        "secret key the tokens are signed with; default: accept any key)")
    timing = parser.add_argument_group("timing and rendering")
    timing.add_argument("--queue-time", type=float, metavar="S",
                        help="seconds pending (default 0.5)")
    timing.add_argument("--processing-time", type=float, metavar="S",
                        help="seconds processing (default 3)")
    timing.add_argument("--jitter", type=float, metavar="F",
                        help="spread of both times, fraction 0..1")
    timing.add_argument("--estimate-factor", type=float, metavar="F",
                        help="scale the estimated_time tasks report, not how long they take "
                        "(e.g. 0.33 for a hint 3x too low; default 1)")
    timing.add_argument("--render", choices=("full", "cached"),
                        help="cached: one clip per size/duration/audio (for benchmarks)")
    timing.add_argument("--link-ttl", type=float, metavar="S",
                        help="seconds a result link stays valid")
    timing.add_argument("--upload-ttl", type=float, metavar="S",
                        help="seconds an upload stays (72 h)")
    timing.add_argument("--check-images", action="store_true", default=None,
                        help="fail tasks whose images are under 300 px or too narrow/wide")
    timing.add_argument("--rate", action="append", metavar="RES=CREDITS",
                        help="gateway credits per second, e.g. 720p=8.1 or audio=2.7 (repeatable)")
    timing.add_argument("--unit-rate", action="append", metavar="RES=UNITS",
                        help="Kling units per second (--provider kling), e.g. 720p=0.6 "
                        "(repeatable)")
    timing.add_argument("--usd-rate", action="append", metavar="RES=USD",
                        help="fal.ai dollars per second (--provider fal), e.g. 720p=0.084 "
                        "(repeatable)")
    rough = parser.add_argument_group("a gateway unlike the one shotrun expects")
    rough.add_argument("--output-scale", type=float, metavar="F",
                       help="render videos at this fraction of the nominal size "
                       "(0.125: 160x90 for 720p 16:9; default 1)")
    rough.add_argument("--progress", choices=("linear", "none"),
                       help="none: task bodies carry no progress field (default linear)")
    rough.add_argument("--fal-validation", choices=FAL_VALIDATION_MODES,
                       help="fal.ai only: queue accepts any input and refuses a bad one once "
                       "queued (COMPLETED with an error, result 422); default submit: 422 at "
                       "submit")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--concurrency-cap", type=int, metavar="N",
                        help="tasks in flight at most; more get 429 with Retry-After")
    faults.add_argument("--retry-after", type=float, metavar="S",
                        help="Retry-After of 429s in seconds")
    faults.add_argument("--failure-rate", type=float, metavar="F",
                        help="fraction of tasks that fail")
    faults.add_argument("--failure-codes", metavar="CODE[,CODE...]",
                        help="business codes of failed tasks (default service_error)")
    faults.add_argument("--error-rate", action="append", metavar="STATUS=RATE",
                        help="answer this fraction of API requests with 429/500/502/503 "
                        "(repeatable)")
    faults.add_argument("--reset-rate", type=float, metavar="F",
                        help="fraction of connections reset")
    faults.add_argument("--truncate-rate", type=float, metavar="F",
                        help="fraction of downloads cut short")
    faults.add_argument("--download-rate", type=float, metavar="BYTES_PER_S",
                        help="download speed, bytes/s")
    faults.add_argument("--credits", type=float, metavar="CREDITS",
                        help="the account's balance in the provider's unit (gateway "
                        "credits, Kling units, fal dollars); creations beyond it are refused "
                        "as out of credits")
    faults.add_argument("--account", action="append", metavar="VAR=N",
                        help="an account whose key (Kling: secret key) is in the environment "
                        "variable VAR, with at most N tasks in flight (its own 429 past them; "
                        "its tasks found only with its key; stats under the name VAR); "
                        "repeatable; other keys share the limits above")
    faults.add_argument("--account-credits", action="append", metavar="VAR=CREDITS",
                        help="the balance of the account of --account VAR=N, in the "
                        "provider's unit (repeatable)")
    faults.add_argument("--seed", type=int, metavar="N",
                        help="seed of the fault dice (replayable runs)")
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> EmulatorSettings:
    """The settings the flags ask for; bad values raise :class:`UsageError`."""
    data: dict[str, Any] = {}
    for name in ("queue_time", "processing_time", "jitter", "estimate_factor", "render",
                 "link_ttl", "upload_ttl", "concurrency_cap", "retry_after", "failure_rate",
                 "reset_rate", "truncate_rate", "download_rate", "seed", "check_images",
                 "credits", "output_scale", "progress", "fal_validation"):
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    if args.failure_codes:
        data["failure_codes"] = [c.strip() for c in args.failure_codes.split(",") if c.strip()]
    if args.error_rate:
        data["error_rates"] = _pairs(args.error_rate, "--error-rate")
    for name, flag in (("rate", "--rate"), ("unit_rate", "--unit-rate"),
                       ("usd_rate", "--usd-rate")):
        if getattr(args, name, None):  # each provider's prices, in its own unit
            data[f"{name}s"] = _pairs(getattr(args, name), flag)
    if args.api_key_env:
        key = environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env: the variable {args.api_key_env} is not set; "
                             "export it or leave the flag out to accept any key")
        register_secret(key)
        data["api_key"] = key
    if args.account or args.account_credits:
        data["accounts"] = _accounts(args.account, args.account_credits, environ)
    try:
        return EmulatorSettings.from_mapping(data)
    except ValueError as exc:
        raise UsageError(f"shotrun emulator: {exc}") from None


def _accounts(caps: list[str] | None, credits: list[str] | None,
              environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``accounts`` from ``--account VAR=N`` and ``--account-credits VAR=CREDITS``: each key
    read from its variable (registered as a secret), labelled by the variable's name."""
    balances = _pairs(credits, "--account-credits")
    accounts: dict[str, dict[str, Any]] = {}
    named: dict[str, str] = {}  # key -> the variable that gave it first
    for var, cap in _pairs(caps, "--account").items():
        if not cap.is_integer() or cap < 1:
            raise UsageError(f"--account {var}={cap:g}: the number of tasks in flight must be "
                             "a whole number >= 1")
        key = environ.get(var, "").strip()
        if not key:
            raise UsageError(f"--account: the variable {var} is not set; export the "
                             "account's key in it")
        register_secret(key)
        if key in named:
            raise UsageError(f"--account: {var} holds the same key as {named[key]}; give "
                             "each account its own key")
        named[key] = var
        accounts[key] = {"label": var, "concurrency_cap": int(cap)}
        if var in balances:
            accounts[key]["credits"] = balances.pop(var)
    if balances:
        var = sorted(balances)[0]
        raise UsageError(f"--account-credits {var}: no account of that name; add "
                         f"--account {var}=N")
    return accounts


def _check_host(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--host {host}: the emulator serves loopback addresses only "
                         "(e.g. 127.0.0.1)")


async def _serve(settings: EmulatorSettings, host: str, port: int,
                 provider: str = GATEWAY, key_env: str | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)  # a polite kill stops cleanly too
    # Here, not at the top: the server brings aiohttp, PyAV and numpy, which `shotrun --help`
    # and every other command would otherwise pay for at start-up.
    from runner.emulator.server import run_emulator

    async with run_emulator(settings, host=host, port=port, provider=provider) as emulator:
        print(emulator.base_url, flush=True)
        print(f"shotrun emulator: serving {_SPEAKS[provider]} and files at "
              f"{emulator.base_url} (Ctrl-C to stop); render against it from another "
              "terminal (spends nothing) with:", file=sys.stderr)
        for line in how_to_use(emulator.base_url, provider, key_env):
            print(f"  {line}", file=sys.stderr)
        for note in [*notes_for(provider), *account_notes(
                ((a.label, a.concurrency_cap, a.credits) for a in settings.accounts.values()),
                provider)]:
            print(f"  ({note})", file=sys.stderr)
        sys.stderr.flush()
        await stop.wait()
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 130 on Ctrl-C."""
    _check_host(args.host)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be between 0 and 65535")
    settings = settings_from_args(args, os.environ)
    try:
        asyncio.run(_serve(settings, args.host, args.port, args.provider, args.api_key_env))
    except KeyboardInterrupt:
        print("shotrun emulator: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
                         ) from None
    return EXIT_OK
