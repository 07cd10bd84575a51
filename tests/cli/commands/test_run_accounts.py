"""``api.accounts`` on the built-in emulator: a manifest of several accounts tries out as is."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from tests.helpers.run import FAST_FLAGS, write_manifest

TWO_ACCOUNTS = (
    "  accounts:\n"
    "    - {name: studio-a, api_key_env: TRY_KEY_A, concurrency: 2}\n"
    "    - {name: studio-b, api_key_env: TRY_KEY_B, concurrency: 2}\n"
)
SIX = "".join(f"  - id: s{n}\n    prompt: \"harbour {n}\"\n" for n in range(6))


@pytest.mark.parametrize("keys_set", [True, False])
def test_several_accounts_on_the_built_in_emulator_render_every_take(
    tmp_path: Path, keys_set: bool, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The built-in emulator lives in the run with a fresh key of its own: every account
    sends with that key (an account's own key, set or not, is refused there: 401)."""
    for name in ("TRY_KEY_A", "TRY_KEY_B"):
        if keys_set:
            monkeypatch.setenv(name, f"some-{name.lower()}")
        else:
            monkeypatch.delenv(name, raising=False)
    manifest = write_manifest(tmp_path, SIX, api=TWO_ACCOUNTS)
    code = main(["run", str(manifest), *FAST_FLAGS])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "done: 6/6" in out, out
