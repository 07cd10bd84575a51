"""``--download-timeout`` / ``--min-download-rate``: flags > environment > manifest > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import cli
from runner.cli.flags import client_limits
from runner.core.errors import UsageError
from runner.manifest import load_manifest
from runner.providers.gateway.timeouts import DEFAULT_DOWNLOAD_TOTAL, DEFAULT_MIN_DOWNLOAD_RATE
from tests.helpers.run import THREE, write_manifest


def limits(tmp_path: Path, flags: list[str], environ: dict[str, str]) -> tuple[float, float]:
    manifest = load_manifest(write_manifest(tmp_path, THREE))
    args = cli.build_parser().parse_args(["run", str(manifest.path), *flags])
    timeouts = client_limits(args, manifest, environ).timeouts
    return timeouts.download_total, timeouts.min_download_rate


SETTINGS = "  download_timeout: 30\n  min_download_rate: 100\n"


def test_defaults_then_manifest_then_environment_then_flags(tmp_path: Path) -> None:
    assert limits(tmp_path, [], {}) == (DEFAULT_DOWNLOAD_TOTAL, DEFAULT_MIN_DOWNLOAD_RATE)
    path = tmp_path / "m"
    path.mkdir()
    # write_manifest has its own api section: the settings go into it.
    manifest = write_manifest(path, THREE)
    manifest.write_text(manifest.read_text().replace("  submit_rate: 50\n",
                                                     "  submit_rate: 50\n" + SETTINGS))
    loaded = load_manifest(manifest)
    args = cli.build_parser().parse_args(["run", str(manifest)])
    assert (loaded.api.download_timeout, loaded.api.min_download_rate) == (30, 100)
    timeouts = client_limits(args, loaded, {}).timeouts
    assert (timeouts.download_total, timeouts.min_download_rate) == (30, 100)
    env = {"SHOTRUN_DOWNLOAD_TIMEOUT": "45", "SHOTRUN_MIN_DOWNLOAD_RATE": "2K"}
    timeouts = client_limits(args, loaded, env).timeouts
    assert (timeouts.download_total, timeouts.min_download_rate) == (45, 2048)
    args = cli.build_parser().parse_args(["run", str(manifest), "--download-timeout", "9",
                                          "--min-download-rate", "0"])
    timeouts = client_limits(args, loaded, env).timeouts
    assert (timeouts.download_total, timeouts.min_download_rate) == (9, 0)


@pytest.mark.parametrize(("name", "value"), [("SHOTRUN_DOWNLOAD_TIMEOUT", "-1"),
                                             ("SHOTRUN_DOWNLOAD_TIMEOUT", "soon"),
                                             ("SHOTRUN_MIN_DOWNLOAD_RATE", "fast")])
def test_nonsense_in_the_environment_names_the_variable(tmp_path: Path, name: str,
                                                         value: str) -> None:
    with pytest.raises(UsageError, match=f"environment variable {name}"):
        limits(tmp_path, [], {name: value})


def test_a_bad_environment_value_exits_2_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_MIN_DOWNLOAD_RATE", "fast")
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "SHOTRUN_MIN_DOWNLOAD_RATE" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
