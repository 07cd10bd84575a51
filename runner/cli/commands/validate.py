"""``shotrun validate FILE...``: every problem of every manifest, before a credit is spent.

Each file is checked even when an earlier one fails; each problem is one line,
``FILE:LINE:COL: key.path: what is wrong; what to do``. Exit 0 when every file is valid (warnings
allowed), 2 when any is not. ``--json`` prints the same findings as one JSON document.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from runner.cli.warnings import remember
from runner.core.errors import EXIT_OK, EXIT_USAGE
from runner.core.redact import redact
from runner.providers.session import check_base_url_flag
from runner.wire.specs import add_flag as add_provider_flag


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun validate``."""
    parser = subparsers.add_parser(
        "validate",
        help="check manifests and print every problem (no network; spends nothing)",
        description="Check each manifest (schema, then rules) and print every problem as "
        "FILE:LINE:COL: key.path: message. Exit 0 when all are valid, 2 when any is not.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="manifest files (YAML)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    add_provider_flag(parser)
    parser.add_argument("--base-url", metavar="URL",
                        help="where a run would send, as `run --base-url`: a gateway URL or "
                        "`emulator` (overrides SHOTRUN_BASE_URL and api.base_url); decides "
                        "whether local images can go to fal.ai or the Kling API")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate every file; print problems; 0 when all are valid, else 2."""
    from runner.manifest import validate_file  # here for start-up speed: YAML, jsonschema

    check_base_url_flag(args.base_url)  # UsageError -> exit 2, before any file is read
    results: list[dict[str, Any]] = []
    all_valid = True
    for file in args.files:
        problems = validate_file(file, args.provider, args.base_url)
        errors = sum(1 for p in problems if p.severity == "error")
        all_valid = all_valid and errors == 0
        results.append({"file": file, "valid": errors == 0, "errors": errors,
                        "warnings": len(problems) - errors,
                        "problems": [p.to_json() for p in problems]})
        if not args.json:
            for problem in problems:
                print(redact(str(problem)))
            if errors == 0:  # plan and run then say these in one line: see _warnings
                remember(file, problems)
            if errors == 0 and not args.quiet:  # -q: only the problems
                warned = f" ({len(problems)} warning{'s' if len(problems) != 1 else ''})" \
                    if problems else ""
                print(redact(f"{file}: valid{warned}"))
    if args.json:
        print(redact(json.dumps({"valid": all_valid, "files": results}, indent=2)))
    return EXIT_OK if all_valid else EXIT_USAGE
