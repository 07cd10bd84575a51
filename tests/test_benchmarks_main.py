"""``python -m benchmarks``: its --help names the benchmarks, a wrong name is one line."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main, resolve


def test_help_lists_every_benchmark_by_its_short_name(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "python -m benchmarks --quick startup" in out
    for name in ("startup", "render", "resume", "polling"):
        assert name in out


def test_short_and_module_names_both_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert resolve(["startup", "bench_resume"]) == ["bench_startup", "bench_resume"]


def test_an_unknown_name_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--quick", "nosuch"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m benchmarks: error: no benchmark 'nosuch'; choose "
                              "from: download, manifest,")
    assert "Traceback" not in "\n".join(err)


def test_the_team_benchmark_without_postgresql_says_so_and_skips(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CI runs every benchmark: a machine without PostgreSQL gets a row, not a crash."""
    from benchmarks import bench_team, postgres

    monkeypatch.setattr(postgres, "binaries", lambda: None)
    rows = bench_team.run(quick=True)
    assert [r["name"] for r in rows] == ["team: skipped"]
    assert "PostgreSQL's binaries" in rows[0]["limit"]
