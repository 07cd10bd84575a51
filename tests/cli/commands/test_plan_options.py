"""``shotrun plan`` options: ``--payloads`` shows what would be sent in the human plan, and
``--only`` selects takes as ``run`` does. The stores are made by real emulator runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from tests.helpers.run import FAST_FLAGS, THREE, write_manifest


def _out(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert cli.main(["plan", *args]) == 0
    return capsys.readouterr().out


def _payload_lines(out: str) -> dict[str, Any]:
    """Each take key line followed by its payload line, after the "Payloads" head."""
    lines = out.split("Payloads (", 1)[1].splitlines()[1:]
    found: dict[str, Any] = {}
    for key, payload in zip(lines[::2], lines[1::2], strict=False):
        if not key.startswith("  ") or not payload.startswith("    {"):
            break
        found[key.strip()] = json.loads(payload)
    return found


def test_plan_payloads_prints_each_takes_wire_payload_as_json_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--no-report"]) == 0
    write_manifest(tmp_path, THREE.replace("waves on rocks", "waves on sand"))

    default = _out(capsys, str(manifest))
    assert "Payloads" not in default and '"prompt"' not in default  # compact by default

    shown = _payload_lines(_out(capsys, str(manifest), "--payloads"))
    document = json.loads(_out(capsys, str(manifest), "--json"))
    assert shown == {take["key"]: take["payload"] for take in document["takes"]}
    assert shown["s02/take-1"]["prompt"] == "waves on sand"  # what a run would now send
    assert "--payloads" in _help(capsys)


def _help(capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["plan", "--help"])
    return capsys.readouterr().out


def _keys(capsys: pytest.CaptureFixture[str], command: str, manifest: Path,
          *only: str) -> list[str]:
    capsys.readouterr()
    assert cli.main([command, str(manifest), "--json",
                     *(arg for o in only for arg in ("--only", o))]) == 0
    document = json.loads(capsys.readouterr().out)
    return [take["key" if command == "plan" else "id"] for take in document["takes"]]


@pytest.mark.parametrize("only", [("s01",), ("act2",), ("s01/take-2",), ("s02", "act1")])
def test_plan_only_selects_the_takes_run_and_status_select(
        only: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--no-report", "--only", "act2"]) == 0
    assert _keys(capsys, "plan", manifest, *only) == _keys(capsys, "status", manifest, *only)


def test_plan_only_totals_and_unknown_selector(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS, "--no-report", "--only", "act2"]) == 0
    out = _out(capsys, str(manifest), "--only", "s02")
    assert "s02/take-1" in out and "s01/take-1" not in out
    assert "will run: 0 takes" in out and "already done: 1 take " in out
    out = _out(capsys, str(manifest), "--only", "act1")
    assert "will run: 2 takes" in out and "s02/take-1" not in out

    capsys.readouterr()
    assert cli.main(["plan", str(manifest), "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--only nope: no shot id or tag of" in err and "Traceback" not in err
