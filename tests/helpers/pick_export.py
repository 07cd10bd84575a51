"""A chained shot list run to the end, for pick and export tests.

Moved from ``tests.scenarios.continuity.test_pick_export`` so that no test module imports
another."""

from __future__ import annotations

import hashlib
from pathlib import Path

from runner import cli

FAST_FLAGS = ["--poll-min", "0.01", "--poll-max", "0.05", "--backoff-base", "0.01",
              "--backoff-cap", "0.05", "--submit-rate", "0"]


SHOTS = """\
  - id: s01-walk
    prompt: "A woman in a red coat walks along the beach"
    takes: 2
  - id: s02-turn
    prompt: "She turns toward the lighthouse"
    start_frame: {from_shot: s01-walk, frame: last}
  - id: s03-credits
    prompt: "Slow pan across the empty beach at dusk"
    after: [s02-turn]
"""


def write_manifest(root: Path, shots: str = SHOTS, *, assets: str = "") -> Path:
    path = root / "shots.yaml"
    path.write_text(
        "version: 1\nname: continuity\noutput_dir: out\n"
        "api:\n  base_url: emulator\n"
        "  emulator: {queue_time: 0.01, processing_time: 0.03, render: full}\n"
        f"{assets}defaults: {{resolution: 720p, duration: 3}}\n"
        f"shots:\n{shots}",
        encoding="utf-8",
    )
    return path


def run(manifest: Path, *extra: str) -> int:
    return cli.main(["run", str(manifest), *FAST_FLAGS, *extra])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
