"""Builders for kept-render tests: a manifest, a run, a sidecar, the promises checked.

Moved from ``tests.scenarios.kept.test_kept_renders`` so that no test module imports another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers.promises import (
    assert_lines_bounded,
    assert_paid_once,
    assert_secret_absent,
    assert_store_bounded,
)
from tests.helpers.run import FAST_FLAGS, KEY, THREE, main_in_thread
from tests.helpers.run import write_manifest as _write_manifest

TAKES = 3  # THREE: s01 (2 takes), s02


def write_manifest(root: Path, shots: str = THREE) -> Path:
    return _write_manifest(root, shots, budget="budget:\n  rates: {720p: 8.1}\n")


def store_of(root: Path) -> Path:
    return root / "out" / ".shotrun" / "state.sqlite"


def sidecar(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    return data


def check_promises(root: Path, accepted: int, takes: int, *texts: str) -> None:
    assert_paid_once(accepted, takes, store_of(root))
    assert_lines_bounded(*texts)
    assert_store_bounded(store_of(root))
    assert_secret_absent(root / "out", KEY)


async def run(args: list[str], base_url: str) -> int:
    code: int = await main_in_thread(["run", *args, "--base-url", base_url, *FAST_FLAGS])
    return code
