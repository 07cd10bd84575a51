"""``--store URL`` as :func:`runner.cli.flags.add_store_flag` adds it, read through the
precedence of :func:`runner.core.storeurl.store_url` (flag, environment, manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from runner.cli import main
from runner.cli.flags import add_store_flag
from runner.core.errors import UsageError
from runner.core.storeurl import ENV_STORE_URL, store_url
from tests.helpers.postgres import PgServer
from tests.helpers.run import THREE, write_manifest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shotrun run")
    add_store_flag(parser)
    return parser


def test_the_flag_wins_over_the_environment_and_the_manifest() -> None:
    args = _parser().parse_args(["--store", "postgresql://team@db.example/shots"])
    environ = {ENV_STORE_URL: "postgresql://env@db.example/shots"}
    assert store_url(args.store, environ, "postgresql://m@h/d") == (
        "postgresql://team@db.example/shots")


def test_without_the_flag_the_environment_applies() -> None:
    args = _parser().parse_args([])
    assert args.store is None
    assert store_url(args.store, {ENV_STORE_URL: "postgres://h/d"}, None) == "postgres://h/d"
    assert store_url(args.store, {}, None) is None


def test_a_bad_flag_value_is_a_usage_error_naming_the_flag() -> None:
    args = _parser().parse_args(["--store", "sqlite:///x.db"])
    with pytest.raises(UsageError, match=r"^--store: 'sqlite:///x.db' is not a PostgreSQL URL"):
        store_url(args.store, {}, None)


def test_the_help_says_what_it_overrides_and_where_the_password_goes() -> None:
    text = " ".join(_parser().format_help().split())
    assert "--store URL" in text
    for words in ("postgresql://", "SHOTRUN_STORE_URL", "state.url", "PGPASSWORD"):
        assert words in text


def test_run_refuses_a_store_of_another_kind_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_manifest(tmp_path, THREE)
    assert main(["run", str(path), "--store", "mysql://team:pw-Secret-9@db/shots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shotrun: error: --store:") and "pw-Secret-9" not in err
    assert not (tmp_path / "out").exists()  # nothing written, nothing sent


def test_a_password_on_the_command_line_is_warned_about_and_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg_server: PgServer,
) -> None:
    path = write_manifest(tmp_path, THREE)
    url = pg_server.database()
    # The built-in emulator cannot serve a team: refused, after the warning.
    assert main(["run", str(path), "--store", url]) == 2
    out, err = capsys.readouterr()
    assert "shows in the process list" in err and "needs a provider every runner" in err
    assert pg_server.password not in out + err
