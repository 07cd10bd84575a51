"""The flag groups several commands share, and what they resolve to.

``run`` and ``probe`` both talk to a provider: they share the network limits
(:func:`add_network_limits`, read back by :func:`client_limits`), the polling bounds
(:func:`add_poll_limits`, :func:`poll_policy`) and where to send (:func:`add_endpoint_flags`);
:func:`engine_settings` reads ``run``'s tuning flags (and the polling bounds) into the engine's.
A private module of the commands package: the CLI does not take it for a command, and a
command imports it rather than another command.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from runner.core.errors import UsageError
from runner.core.model import Manifest
from runner.providers.session import ClientLimits, RunConfig
from runner.scheduler.backoff import BackoffPolicy
from runner.scheduler.polling import PollPolicy

if TYPE_CHECKING:  # the engine's context brings aiohttp: imported where used
    from runner.scheduler.run_context import EngineSettings

# Poll bounds: a real gateway renders in minutes; the built-in emulator in seconds.
ENV_DOWNLOAD_TIMEOUT = "SHOTRUN_DOWNLOAD_TIMEOUT"
ENV_MIN_DOWNLOAD_RATE = "SHOTRUN_MIN_DOWNLOAD_RATE"
REAL_POLLING = PollPolicy(min_interval=2.0, max_interval=30.0)
EMULATOR_POLLING = PollPolicy(min_interval=0.1, max_interval=2.0, default_estimate=5.0)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def positive_float(text: str) -> float:
    """A number of seconds (or a rate) above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a number above 0")
    return value


def add_endpoint_flags(parser: argparse.ArgumentParser) -> None:
    """``--base-url`` and ``--files-url``: where a command that sends goes (run, probe)."""
    parser.add_argument("--base-url", metavar="URL",
                        help="gateway URL or `emulator` (overrides SHOTRUN_BASE_URL and "
                        "api.base_url)")
    parser.add_argument("--files-url", metavar="URL", help="file service URL")


def add_store_flag(parser: argparse.ArgumentParser) -> None:
    """``--store URL``: where the state store lives, read with
    :func:`runner.core.storeurl.store_url` (flag, then SHOTRUN_STORE_URL, then
    ``state.url``). For the commands that open a store; the flag itself opens nothing."""
    parser.add_argument("--store", metavar="URL",
                        help="the shared state store: a postgresql:// URL (overrides "
                        "SHOTRUN_STORE_URL and state.url; the password from PGPASSWORD or "
                        "~/.pgpass); unset: the SQLite file in the output folder")


def add_network_limits(parser: argparse.ArgumentParser) -> None:
    """The client's time and size flags, read back by :func:`client_limits` (``run`` and
    ``probe`` share them)."""
    limits = parser.add_argument_group("network limits")
    limits.add_argument("--connect-timeout", type=float, metavar="S",
                        help="longest wait for a connection (default 15)")
    limits.add_argument("--request-timeout", type=float, metavar="S",
                        help="longest wait for a whole API exchange, e.g. a gateway that "
                        "stops answering (default 60)")
    limits.add_argument("--read-timeout", type=float, metavar="S",
                        help="longest a result download may go without a byte (default 60; "
                        "also the window --min-download-rate is measured over)")
    limits.add_argument("--download-timeout", type=_seconds, metavar="S",
                        help="longest one result download may take (default 7200; "
                        f"{ENV_DOWNLOAD_TIMEOUT}, api.download_timeout); beyond it the "
                        "download is retried later and the link kept: nothing is paid again")
    limits.add_argument("--min-download-rate", type=_rate, metavar="RATE",
                        help="slowest average a result download may have over each "
                        "--read-timeout window, in bytes per second or with K/M/G (default "
                        f"1K, 0 for none; {ENV_MIN_DOWNLOAD_RATE}, api.min_download_rate); "
                        "slower, it is retried later and the link kept: nothing is paid again")
    limits.add_argument("--max-result-size", type=_size, metavar="SIZE",
                        help="refuse results larger than this (bytes, or with K/M/G; "
                        "default 2G)")


_BINARY_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}


def _bytes(text: str) -> float:
    """``1048576``, ``512K``, ``500M``, ``2G`` -> bytes (binary units); ValueError if not a
    number. The one reading of a K/M/G suffix for sizes and rates alike."""
    scale = _BINARY_UNITS.get(text[-1:].upper(), 1)
    return float(text[:-1] if scale > 1 else text) * scale


def _size(text: str) -> int:
    """``1048576``, ``512K``, ``500M``, ``2G`` -> bytes (binary units)."""
    try:
        value = _bytes(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)") from None
    if not value > 0 or value > 2**62:
        raise argparse.ArgumentTypeError("must be a positive size")
    return int(value)


def _seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _rate(text: str) -> float:
    """Bytes per second: ``2048``, ``16K``, ``1M``; 0 for none."""
    try:
        value = _bytes(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a rate: {text!r} (bytes per second, e.g. 2048, 16K, 1M; 0 for none)") from None
    if not 0 <= value <= 2**40:
        raise argparse.ArgumentTypeError(
            f"must be 0 or more bytes per second (at most 1T), got {text!r}")
    return value


def _download_bounds(args: argparse.Namespace, manifest: Manifest | None,
                     environ: Mapping[str, str]) -> dict[str, float]:
    """``--download-timeout``/``--min-download-rate`` > their environment variables > the
    manifest's ``api`` settings; what none of them gives is left to the client's default."""
    bounds: dict[str, float] = {}
    for name, flag, env_name, parse, setting in (
            ("download_total", args.download_timeout, ENV_DOWNLOAD_TIMEOUT, _seconds,
             manifest.api.download_timeout if manifest else None),
            ("min_download_rate", args.min_download_rate, ENV_MIN_DOWNLOAD_RATE, _rate,
             manifest.api.min_download_rate if manifest else None)):
        if flag is not None:
            bounds[name] = flag
        elif environ.get(env_name, "").strip():
            try:
                bounds[name] = parse(environ[env_name].strip())
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"environment variable {env_name}: {exc}") from None
        elif setting is not None:
            bounds[name] = setting
    return bounds


def client_limits(args: argparse.Namespace, manifest: Manifest | None = None,
                  environ: Mapping[str, str] | None = None) -> ClientLimits:
    """The gateway client's time and size limits from the flags, the environment and the
    manifest, in that order (bad values: usage error)."""
    from runner.providers.gateway.timeouts import ClientTimeouts

    given: dict[str, float] = {
        name: value for name, value in (("connect", args.connect_timeout),
                                        ("request", args.request_timeout),
                                        ("download_read", args.read_timeout))
        if value is not None}
    given.update(_download_bounds(args, manifest, os.environ if environ is None else environ))
    try:
        timeouts = ClientTimeouts(**given)
    except ValueError as exc:
        raise UsageError(f"timeout flags: {exc}") from None
    if args.max_result_size is None:
        return ClientLimits(timeouts=timeouts)
    return ClientLimits(timeouts=timeouts, max_result_bytes=args.max_result_size)


def add_poll_limits(parser: argparse.ArgumentParser) -> None:
    """``--poll-min``/``--poll-max`` (run and probe)."""
    parser.add_argument("--poll-min", type=float, metavar="S",
                        help="shortest interval between status checks of a task (seconds)")
    parser.add_argument("--poll-max", type=float, metavar="S",
                        help="longest interval between status checks of a task (seconds; a "
                        "first check aimed by the task times the run measured may wait longer)")


def poll_policy(args: argparse.Namespace, config: RunConfig, *, calibrate: bool = False
                ) -> PollPolicy:
    """The polling of a command from its ``--poll-min``/``--poll-max`` and where it goes
    (the built-in emulator is fast; a real gateway is not)."""
    base = EMULATOR_POLLING if config.uses_emulator else REAL_POLLING
    poll_min = args.poll_min if args.poll_min is not None else base.min_interval
    poll_max = args.poll_max if args.poll_max is not None else max(base.max_interval, poll_min)
    try:
        return PollPolicy(min_interval=poll_min, max_interval=poll_max,
                          default_estimate=base.default_estimate, calibrate=calibrate)
    except ValueError as exc:  # the values as used, defaults included: one may be unset
        raise UsageError(f"timing flags: --poll-min {poll_min:g}, --poll-max {poll_max:g}: "
                         f"{exc}") from None


def engine_settings(args: argparse.Namespace, config: RunConfig) -> EngineSettings:
    """Engine settings from the resolved config and the tuning flags."""
    from runner.scheduler.run_context import EngineSettings  # here for start-up speed

    polling = poll_policy(args, config, calibrate=args.poll_calibration == "on")
    backoff = BackoffPolicy()
    b_base = args.backoff_base if args.backoff_base is not None else backoff.base
    b_cap = args.backoff_cap if args.backoff_cap is not None else max(backoff.cap, b_base)
    try:
        backoff = BackoffPolicy(base=b_base, cap=b_cap,
                                retry_after_cap=max(b_cap, backoff.retry_after_cap
                                                    if args.backoff_cap is None else b_cap))
    except ValueError as exc:
        raise UsageError(f"timing flags: {exc}") from None
    return EngineSettings(
        concurrency=config.concurrency, submit_rate=config.submit_rate,
        downloads=config.downloads, max_credits=config.max_credits, retries=args.retries,
        ambiguous=args.ambiguous, backoff=backoff, polling=polling,
        task_timeout=args.task_timeout if args.task_timeout > 0 else None,
    )
