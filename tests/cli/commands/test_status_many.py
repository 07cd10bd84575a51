"""``shotrun status`` of thousands of takes: aligned plain lines, every take, the same cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from runner.cli.status_table import PLAIN_ABOVE
from runner.manifest import load_manifest
from runner.state import StateStore, store_path_for
from runner.wire.payload import build_payload, fingerprint_resolver


def test_many_takes_are_listed_as_plain_aligned_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shots = PLAIN_ABOVE // 20 + 1
    path = tmp_path / "shots.yaml"
    path.write_text("version: 1\nname: many\napi: {base_url: emulator}\nshots:\n" + "".join(
        f'  - id: s{n:03d}\n    prompt: "shot {n}"\n    takes: 20\n' for n in range(shots)))
    manifest = load_manifest(path)
    with StateStore.open(store_path_for(manifest)) as store:
        store.sync(manifest.takes, {t.key: build_payload(t.request, fingerprint_resolver)
                                    for t in manifest.takes})
        store.mark_failed("s000/take-2", "permanent", "content_policy_violation", "flagged")

    assert cli.main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("take "):].splitlines()  # after any log lines
    assert lines[0].split() == ["take", "status", "task", "id", "att.", "credits", "output",
                                "last", "error"]
    listed = [line for line in lines[1:] if line.startswith("s")]
    assert len(listed) == shots * 20 > PLAIN_ABOVE
    assert listed[0].split() == ["s000/take-1", "new", "-", "0", "-", "-"]
    assert listed[1].split()[:3] == ["s000/take-2", "failed", "(permanent)"]
    assert listed[1].endswith("flagged")
    assert len({line.index(" new ") for line in listed if " new " in line}) == 1  # aligned
    assert f"{shots * 20} takes: " in lines[-1]
