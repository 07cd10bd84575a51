"""``shotrun plan FILE [--json]``: what a run would send and what it would cost; no network.

Reads the manifest and, when a run happened, the state store (read-only), and prints the
plan :mod:`runner.views.plan_document` builds: as JSON (``--json``), or as the table
:func:`runner.cli.plan_table.render_plan` lays out. Sends nothing, spends nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from runner.cli.flags import add_store_flag
from runner.core.errors import EXIT_OK
from runner.core.model import Take
from runner.core.redact import redact
from runner.core.selection import select_takes
from runner.providers.session import Overrides, check_base_url_flag
from runner.views.outlook import read_store
from runner.views.plan_document import plan_document, plan_rows
from runner.wire.specs import add_flag as add_provider_flag
from runner.wire.specs import chosen_base_url


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun plan``."""
    parser = subparsers.add_parser(
        "plan",
        help="show the takes, wire payloads and their cost (no network; spends nothing)",
        description="Expand the manifest and show every take with its resolved inputs, the "
        "payload that would be sent (--payloads, or --json), and its cost in the unit the "
        "provider bills in (gateway credits, Kling units, fal dollars): what was charged for "
        "a take already rendered, else an estimate (marked ~) from budget.rates, unit_rates "
        "or usd_rates; after a run, what a new run would do with each take and why, what was "
        "spent, and the budget left under that unit's cap. Sends nothing, spends nothing.",
    )
    parser.add_argument("file", metavar="FILE", help="manifest file (YAML)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_provider_flag(parser)
    parser.add_argument("--base-url", metavar="URL",
                        help="where a run would send, as `run --base-url`: a gateway URL or "
                        "`emulator` (overrides SHOTRUN_BASE_URL and api.base_url); chooses the "
                        "saved `shotrun probe` profile and whether local images can go to "
                        "fal.ai or the Kling API")
    parser.add_argument("--only", action="append", default=[], metavar="ID|TAG",
                        help="only these shots (id, id before matrix expansion, take id or "
                        "tag), as `run --only` selects them; repeatable")
    parser.add_argument("--payloads", action="store_true",
                        help="also print each take's wire payload (compact JSON; local files "
                        "shown as <upload PATH>)")
    add_store_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the plan of one manifest (problems make it exit 2 through the CLI)."""
    # Here, not at the top, for start-up speed (YAML, jsonschema, rich).
    from rich.console import Console

    from runner.cli.plan_table import render_plan
    from runner.manifest import load_manifest
    from runner.manifest.outdir import check_output_dir

    check_base_url_flag(args.base_url)  # as run refuses it
    manifest = load_manifest(args.file, args.provider, args.base_url)
    check_output_dir(manifest)  # as run would refuse it: a plan must not promise a run
    takes: list[Take] | None = None
    if args.only:  # run's own selection: `plan --only X` shows what `run --only X` does
        takes = select_takes(manifest, args.only)
    built_in = (chosen_base_url(args.base_url) or manifest.api.base_url) == "emulator"
    view = read_store(manifest, built_in=built_in)
    statuses = None if view is None else view.statuses
    spent = 0.0 if view is None else view.spent
    overrides = Overrides(base_url=args.base_url)
    if args.json:
        document = plan_document(manifest, statuses, spent=spent, takes=takes,
                                 overrides=overrides)
        print(redact(json.dumps(document, indent=2, ensure_ascii=False)))
        return EXIT_OK
    # Piped output is for reading in full or grepping: never cut it to 80 columns.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    console = Console(file=sys.stdout, soft_wrap=False, width=width)
    render_plan(manifest, plan_rows(manifest, statuses, takes), console, spent=spent,
                payloads=args.payloads, overrides=overrides, provider=args.provider)
    return EXIT_OK
