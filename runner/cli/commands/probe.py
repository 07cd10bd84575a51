"""``shotrun probe MANIFEST [--spend] [--json]``: learn a gateway before an overnight run.

Without ``--spend`` it sends only creations that are invalid on purpose (refused with HTTP
400 by the documented gateway, which bills a task only once it is created), to check that
the configured URL is the gateway, that the key is accepted and which field names (with the
manifest's ``api.wire`` renames) the gateway refuses: see :mod:`runner.probe.checks`. With
``--spend`` it then prints the estimated cost, creates exactly one cheapest task, follows it
and reports what the gateway really returned, and writes the profile of this provider and
URL under ``<output_dir>/.shotrun/profiles/`` for ``plan`` and ``run``
(:mod:`runner.probe.spend`, :mod:`runner.media.profile`).

The provider (``--provider`` > ``SHOTRUN_PROVIDER`` > ``api.provider``) decides the words:
fal.ai and the Kling API are probed with their own documented bodies and answers
(:mod:`runner.probe.dialects`).

Settings resolve as ``run``'s do (flags > environment > manifest); the built-in emulator
(``api.base_url: emulator``) needs no key. Exit codes: 0 the probe finished; 1 the gateway
could not be reached, refused the key, is not the gateway, accepted a body invalid on purpose,
or the paid task failed, was ambiguous or did not end in time; 2 invalid manifest or usage;
130 interrupted (a paid task already created is followed by the next ``probe --spend``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.cli.flags import (
    add_endpoint_flags,
    add_network_limits,
    add_poll_limits,
    client_limits,
    poll_policy,
)
from runner.core.errors import EXIT_FAILED, EXIT_OK, AuthenticationFailed, ShotrunError, UsageError
from runner.core.model import Manifest
from runner.core.redact import redact, redact_value
from runner.media.profile import gateway_label, save_profile
from runner.providers.session import ClientLimits, Overrides, RunConfig, open_session, prepare
from runner.wire.specs import add_flag as add_provider_flag
from runner.wire.specs import spec as provider_spec
from runner.wire.urls import safe_url_text

if TYPE_CHECKING:  # imported when the command runs: `shotrun --help` stays light
    from runner.probe.checks import Checks
    from runner.probe.spend import Spent


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun probe``."""
    parser = subparsers.add_parser(
        "probe", help="check a gateway (reached, key, field names) for free; with --spend, "
        "one paid task",
        description="Check the configured gateway (or fal.ai, or the Kling API: --provider) "
        "without spending: reached, key accepted, which field names it refuses (creations "
        "invalid on purpose, which the documented gateway refuses for free), how it answers "
        "about a task it does not know. With --spend, also create one cheapest task (3 s 720p, "
        "cost printed first), follow it, report what came back and write the profile of this "
        "provider and URL under <output_dir>/.shotrun/profiles/ for plan and run. Exit 0 "
        "done, 1 the provider failed a check (or could not be reached, or refused the key), "
        "2 invalid manifest or usage, 3 an unexpected error (crash log), 130 interrupted (a "
        "paid task is followed by the next probe --spend, never paid for again).",
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--spend", action="store_true",
                        help="spends: create one paid task (3 s, 720p, 16:9) and report on it")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    add_endpoint_flags(parser)
    parser.add_argument("--task-timeout", type=float, metavar="S", default=3600.0,
                        help="with --spend: stop waiting for the task after S seconds (the "
                        "next probe --spend follows it, never creates another; default 1 h)")
    add_provider_flag(parser)
    add_poll_limits(parser)
    add_network_limits(parser)
    parser.set_defaults(func=run)


def _out(text: str, *, err: bool = False) -> None:
    print(redact(text), file=sys.stderr if err else sys.stdout, flush=True)


@dataclass
class _Found:
    """What the probe found, for the report."""

    checks: Checks | None = None
    spent: Spent | None = None
    profile: str | None = None
    emulator: dict[str, Any] | None = None
    error: str | None = None  # why the probe stopped early (--json says it too)


async def _probe(manifest: Manifest, config: RunConfig, api_key: str, limits: ClientLimits,
                 args: argparse.Namespace, shown: str, found: _Found) -> None:
    """Probe, filling ``found`` as it goes: what was learnt before an error is reported."""
    from runner.probe import findings as report
    from runner.probe.checks import run_checks
    from runner.probe.dialects import dialect_for
    from runner.probe.spend import Following, spend_estimate, spend_once
    from runner.providers.gateway.client import GatewayClient

    text = not args.json
    async with open_session(manifest, config, api_key, limits) as session:
        gateway = session.gateway  # the real client: raw bodies and headers
        assert isinstance(gateway, GatewayClient)
        try:
            found.checks = await run_checks(gateway, manifest, submit_rate=config.submit_rate,
                                            dialect=dialect_for(config.provider))
            if text:  # what was asked for: printed with -q too, as status is
                for line in report.check_lines(found.checks, shown):
                    _out(line)
            if args.spend and not found.checks.paid_risk:
                line = report.estimate_line(manifest, spend_estimate(manifest))
                how = Following(poll_policy(args, config), task_timeout=args.task_timeout)
                found.spent = spent = await spend_once(
                    gateway, manifest, base_url=_label(config),
                    built_in=config.uses_emulator, how=how,
                    announce=lambda: _out(line, err=args.json))
                profile = report.build_profile(spent, _label(config), found.checks)
                if profile is not None:
                    found.profile = str(save_profile(manifest.output_dir, profile))
                if text:
                    for line in report.spend_lines(spent):
                        _out(line)
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(f"{exc.message}; the key comes from "
                                       f"{config.key_source}",
                                       code=exc.code, status=exc.status) from None
        finally:
            if session.emulator is not None:
                found.emulator = session.emulator.stats()


def _label(config: RunConfig) -> str:
    """How the profile and messages name the gateway (the emulator's port changes per run)."""
    return gateway_label(config.base_url, config.uses_emulator, config.provider)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``shotrun probe``."""
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir
    from runner.probe import findings as report

    manifest = load_manifest(args.manifest, args.provider, args.base_url)  # ManifestError -> exit 2
    check_output_dir(manifest)
    if not args.task_timeout > 0:
        raise UsageError("--task-timeout must be a positive number of seconds")
    config, api_key = prepare(manifest, Overrides(base_url=args.base_url,
                                                  files_url=args.files_url))
    limits = client_limits(args, manifest)
    poll_policy(args, config)  # nonsense timing flags: exit 2 before anything is sent
    shown = "the built-in emulator" if config.uses_emulator else safe_url_text(config.base_url)
    if config.provider != "gateway":
        shown += f" ({provider_spec(config.provider).label})"
    if not args.json and not args.quiet:
        _out(f"shotrun probe: {manifest.name} via {shown}")
    found = _Found()

    def print_json() -> None:
        document = report.document(manifest, shown, config.uses_emulator, found.checks,
                                   found.spent, found.profile, found.emulator)
        document["error"] = found.error
        _out(json.dumps(redact_value(document), indent=2, ensure_ascii=False))

    try:
        asyncio.run(_probe(manifest, config, api_key, limits, args, shown, found))
    except KeyboardInterrupt:
        if args.spend and not config.uses_emulator:
            _say_what_stays(manifest)
        raise
    except ShotrunError as exc:
        if args.json:  # a script reads stdout: what was found, and why it stopped
            found.error = str(exc)
            print_json()
        raise
    if args.json:
        print_json()
    elif found.profile is not None:
        _out(f"profile: {found.profile} (plan and run now expect the sizes it observed)")
    elif not args.spend:
        _out("profile: not written (sizes are observed only with --spend; nothing was spent)")
    return _exit_code(found, spend=args.spend)


def _say_what_stays(manifest: Manifest) -> None:
    """After Ctrl-C: what the paid probe leaves at the provider, and what the next does."""
    from runner.probe.spend import Intent

    intent = Intent(manifest.output_dir)
    earlier = intent.read()
    if earlier is None:
        return
    if earlier.get("state") == "created":
        _out(f"shotrun probe: task {earlier.get('task_id')} keeps rendering (it is paid for): "
             "`shotrun probe --spend` again follows it and creates none (spends nothing)", err=True)
    else:
        _out("shotrun probe: the paid creation was on its way when interrupted: it may exist. "
             "`shotrun probe --spend` again looks it up where the provider can (the Kling API, "
             f"by its external_task_id), and elsewhere refuses to pay again blind until "
             f"{intent.path} is removed", err=True)


def _exit_code(found: _Found, *, spend: bool) -> int:
    if found.checks is None or found.checks.paid_risk or not found.checks.creations_sent:
        return EXIT_FAILED
    if spend and (found.spent is None or found.spent.video is None):
        return EXIT_FAILED
    return EXIT_OK
