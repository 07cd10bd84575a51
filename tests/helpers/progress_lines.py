"""Builders for the progress line tests: a manifest and the lines a run printed.

Moved from ``tests.cli.progress.test_plain_lines`` so that no test module imports another."""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST = """\
version: 1
name: lines
output_dir: out
api:
  base_url: emulator
  concurrency: 2
  submit_rate: 50
  emulator: {queue_time: 0.01, processing_time: 0.03, render: cached}
defaults: {resolution: 720p, duration: 3}
shots:
"""


def write_manifest(root: Path, shots: int) -> Path:
    path = root / "shots.yaml"
    path.write_text(MANIFEST + "".join(f"  - id: s{n}\n    prompt: \"plain line shot {n}\"\n"
                                       for n in range(1, shots + 1)), encoding="utf-8")
    return path


def progress_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(r"shotrun: \d+/\d+ done, ", line)]
