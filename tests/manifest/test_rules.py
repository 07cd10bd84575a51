"""Every rule of docs/manifest.md: a failing manifest and its exact (golden) output.

The goldens are in ``golden/<case>.txt``: the full ``shotrun validate m.yaml`` output. To
regenerate them after a deliberate message change, run with ``SHOTRUN_UPDATE_GOLDEN=1`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner import cli
from runner.core.errors import EXIT_OK, EXIT_USAGE
from tests.helpers.manifest_cases import RULE_CASES
from tests.manifest.conftest import Write

GOLDEN = Path(__file__).parent / "golden"
WARNING_ONLY = {"unknown_at_word_warns", "asset_small_warns", "emulator_ignored_warns",
                "unused_var_warns"}


@pytest.mark.parametrize(("name", "text"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_rule_golden_message(name: str, text: str, write: Write,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write(text)
    code = cli.main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("SHOTRUN_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(out)
    assert out == golden.read_text()
    if name in WARNING_ONLY:
        assert code == EXIT_OK
        assert "warning: " in out
    else:
        assert code == EXIT_USAGE
        assert out.startswith("m.yaml:")


def test_every_golden_has_a_case() -> None:
    names = {c[0] for c in RULE_CASES}
    assert len(names) == len(RULE_CASES)
    assert {p.stem for p in GOLDEN.glob("*.txt")} <= names
