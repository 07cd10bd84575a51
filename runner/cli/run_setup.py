"""What ``shotrun run`` resolves before it runs, and what it says as it starts and stops.

:func:`setup_run` loads the manifest and resolves the flags, the environment and the
manifest into settings (a bad value exits 2 before anything is written or sent);
:func:`announce` says where the run goes and why each take runs; :func:`on_stop_handler`
is what Ctrl-C prints.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.cli.flags import client_limits, engine_settings
from runner.cli.summary import out, print_plan
from runner.core import advice
from runner.core.model import Manifest, Take, VerifyPolicy
from runner.core.selection import select_takes
from runner.core.words import count as counted
from runner.media.observed import OutputExpectations
from runner.media.profile import ProfileChoice
from runner.providers.session import ClientLimits, Overrides, RunConfig, prepare
from runner.views.plan_document import config_profile
from runner.wire.specs import spec as provider_spec

if TYPE_CHECKING:  # the engine's context brings aiohttp: imported where used
    from runner.scheduler.run_context import EngineSettings
    from runner.state import TakePlan


@dataclass(frozen=True, slots=True)
class RunSetup:
    """What a run is about, resolved from the flags before anything is written or sent."""

    manifest: Manifest
    takes: list[Take]
    config: RunConfig
    api_key: str = field(repr=False)  # never in a repr, a log line or a traceback
    settings: EngineSettings
    limits: ClientLimits
    chosen: ProfileChoice  # the `shotrun probe` profile of this gateway, if any
    expectations: OutputExpectations


def setup_run(args: argparse.Namespace) -> RunSetup:
    """Load and check the manifest and resolve the settings: a bad one exits 2 (through the
    CLI) before anything is written or sent."""
    from runner.cli.warnings import warning_lines
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    manifest = load_manifest(args.manifest, args.provider, args.base_url)
    check_output_dir(manifest)  # a file where the folder goes: exit 2, nothing sent
    if args.verify_size is not None:  # the flag over the manifest's verify.size
        manifest = dataclasses.replace(manifest, verify=VerifyPolicy(size=args.verify_size))
    for line in warning_lines(manifest.path, manifest.warnings, args.provider):
        out(line, err=True)
    takes = select_takes(manifest, args.only)
    overrides = Overrides(base_url=args.base_url, files_url=args.files_url,
                          concurrency=args.concurrency, submit_rate=args.submit_rate,
                          downloads=args.downloads, max_credits=args.max_credits)
    config, api_key = prepare(manifest, overrides)  # bad settings: exit 2 before any write
    # What outputs are held to: the manifest's verify rule, and the sizes `shotrun probe`
    # observed on this very gateway (a profile of another one is left out, and said so).
    chosen = config_profile(manifest, config)
    # How long a paid result stays collectable: the provider's documented lifetime.
    settings = dataclasses.replace(engine_settings(args, config), link_lifetime=provider_spec(
        config.provider).result_lifetime, retry_failed=args.retry_failed)
    return RunSetup(manifest, takes, config, api_key, settings, client_limits(args, manifest),
                  chosen, OutputExpectations(manifest.verify, chosen.profile))


def announce(args: argparse.Namespace, setup: RunSetup, plans: Sequence[TakePlan]) -> None:
    """Where the run goes, what outputs are held to, and why each take runs."""
    scripted = args.json or args.progress == "jsonl"
    config = setup.config
    where = "the built-in emulator" if config.uses_emulator else config.base_url
    if config.provider != "gateway":  # which wire format: the manifest may not say it
        where += f" ({provider_spec(config.provider).label})"
    if not args.quiet:  # -q: errors and warnings only (print_plan warns regardless)
        out(f"shotrun: {setup.manifest.name}: {counted(len(plans), 'take')} via {where}",
            err=scripted)
        out(f"  {setup.chosen.describe(setup.takes)}", err=scripted)
    print_plan(plans, stream_err=scripted, quiet=args.quiet)


def on_stop_handler(config: RunConfig) -> Callable[[int], None]:
    """What Ctrl-C prints: the first stops new submissions, the second quits at once."""
    # The built-in emulator lives in this process: its tasks end with the run, and the
    # next run's emulator does not know them (it submits those takes again; its credits
    # are not real). Saying they "keep rendering" would be false there.
    fate = ("the built-in emulator stops with this run, so the next run submits its tasks "
            "in flight again (new tasks at the emulator)" if config.uses_emulator else
            f"tasks in flight keep rendering at {provider_spec(config.provider).label} and "
            f"the next run collects them ({advice.SPENDS_NOTHING})")

    def on_stop(count: int) -> None:
        if count == 1:
            out(f"\nshotrun: stopping: no new submissions; {fate} (Ctrl-C again to quit "
                "at once)", err=True)
        else:
            out("shotrun: quitting now; the state store is consistent", err=True)

    return on_stop
