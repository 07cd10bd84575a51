"""``shotrun schema``: print the manifest JSON Schema (for editors and other tools).

The same file ships inside the package and lives in ``schemas/manifest.schema.json``; point
an editor at it with ``# yaml-language-server: $schema=<path>`` on a manifest's first line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runner.core.errors import EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun schema``."""
    parser = subparsers.add_parser(
        "schema",
        help="print the manifest JSON Schema (spends nothing)",
        description="Print the JSON Schema (draft 2020-12) of the manifest format.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the schema as shipped."""
    from runner.manifest.schema import schema_text  # here for start-up speed: YAML, jsonschema

    text = schema_text()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK
