"""``shotrun run`` on each provider: the same manifest, the emulator in each wire format.

The command runs through ``cli.main`` in a worker thread against an emulator in the test's
loop (or built in); nothing is mocked, waiting is on the command's end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runner import cli
from runner.emulator import run_emulator
from tests.helpers.providers import ACCESS, JWT_HEADER, PROVIDERS, keys, written_text
from tests.helpers.run import FAST_FLAGS, THREE, fast_emulator, main_in_thread, write_manifest

ROOT = Path(__file__).resolve().parents[2]


def summary_of(out: str) -> dict[str, object]:
    """The ``--json`` summary: all of stdout."""
    found: dict[str, object] = json.loads(out)
    return found


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_demo_manifest_renders_on_each_providers_emulator(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    demo = tmp_path / "manifests" / "demo.yaml"
    assert cli.main(["run", str(demo), "--provider", provider, *FAST_FLAGS, "--json"]) == 0
    summary = summary_of(capsys.readouterr().out)
    assert summary["all_done"] and summary["done"] == 6 and summary["ambiguous"] == 0
    assert summary["provider"] == provider


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_wrong_key_is_one_line_and_exit_1_and_never_written(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, provider, wrong=True)
    manifest = write_manifest(tmp_path, THREE, api=f"  provider: {provider}\n")
    async with run_emulator(fast_emulator(api_key=expected), provider=provider) as emulator:
        code = await main_in_thread(["run", str(manifest), "--base-url", emulator.base_url,
                                     *FAST_FLAGS])
        assert emulator.stats()["accepted_tasks"] == 0
    assert code == 1
    captured = capsys.readouterr()
    refused = [line for line in captured.out.splitlines() if "refused the API key" in line]
    assert len(refused) == 1, captured.out
    assert "Traceback" not in captured.err
    variable = "KLING_SECRET_KEY" if provider == "kling" else "FAL_KEY"
    assert variable in captured.err
    for text in (captured.out, captured.err, written_text(tmp_path / "out")):
        assert "wrong-" + expected not in text and expected not in text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_no_secret_reaches_the_log_store_sidecars_or_report(
        provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    expected = keys(monkeypatch, provider)
    manifest = write_manifest(tmp_path, THREE, api=f"  provider: {provider}\n")
    async with run_emulator(fast_emulator(api_key=expected), provider=provider) as emulator:
        code = await main_in_thread(["run", str(manifest), "--base-url", emulator.base_url,
                                     *FAST_FLAGS, "-vv"])
    assert code == 0
    captured = capsys.readouterr()
    written = written_text(tmp_path / "out")
    assert "take_done" in written  # the log is there, and was searched
    for text in (captured.out, captured.err, written):
        for secret in (expected, ACCESS, JWT_HEADER):
            assert secret not in text


async def test_kling_a_lost_creation_answer_is_looked_up_never_sent_twice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections reset after the request (half the time the task exists): every take is
    done, none is ambiguous, and the emulator created exactly one task per take."""
    expected = keys(monkeypatch, "kling")
    shots = "".join(f"  - id: s{n:02}\n    prompt: \"lost answer {n}\"\n" for n in range(12))
    manifest = write_manifest(tmp_path, shots, api="  provider: kling\n")
    settings = fast_emulator(api_key=expected, reset_rate=0.35, seed=17)
    async with run_emulator(settings, provider="kling") as emulator:
        code = await main_in_thread(["run", str(manifest), "--base-url", emulator.base_url,
                                     *FAST_FLAGS, "--json", "--retries", "4"])
        stats = emulator.stats()
    summary = summary_of(capsys.readouterr().out)
    assert code == 0 and summary["all_done"], summary
    assert summary["ambiguous"] == 0 and not summary["held"]
    assert stats["resets"] > 0
    assert stats["accepted_tasks"] == 12 and stats["duplicate_payloads"] == 0, stats
    events = [json.loads(line) for line in
              (tmp_path / "out" / ".shotrun" / "run.log").read_text().splitlines()]
    resolved = [e for e in events if e["event"] == "lost_answer_resolved"]
    # Both ways happened: a lost creation found (adopted) and one that never arrived.
    assert {e["found"] for e in resolved} == {True, False}, resolved


def test_changing_the_provider_renders_again_and_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOTRUN_PROVIDER", raising=False)
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    capsys.readouterr()
    assert cli.main(["plan", str(manifest)]) == 0
    assert "provider changed" not in capsys.readouterr().out
    monkeypatch.setenv("SHOTRUN_PROVIDER", "kling")
    assert cli.main(["plan", str(manifest)]) == 0
    assert capsys.readouterr().out.count("provider changed") == 3
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    assert out.count("(provider changed)") == 3 and "done: 3/3" in out
    # Back to the gateway: its renders were kept, not lost; they are restored at no cost
    # (issue 21: a content-addressed take cache).
    assert cli.main(["plan", str(manifest), "--provider", "gateway"]) == 0
    assert "restore: 3 takes from kept renders (0 credits)" in capsys.readouterr().out


def test_a_bad_shotrun_provider_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTRUN_PROVIDER", "replicate")
    manifest = write_manifest(tmp_path, THREE)
    assert cli.main(["run", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "SHOTRUN_PROVIDER" in err and "gateway, fal, kling" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("provider", "variable"), [("fal", "FAL_KEY"),
                                                    ("kling", "KLING_SECRET_KEY"),
                                                    ("kling", "KLING_ACCESS_KEY")])
def test_a_missing_key_names_the_providers_variable(
        provider: str, variable: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    keys(monkeypatch, provider)
    monkeypatch.delenv(variable)
    manifest = write_manifest(tmp_path, THREE)
    code = cli.main(["run", str(manifest), "--provider", provider, "--base-url",
                     "https://provider.example"])
    err = capsys.readouterr().err
    assert code == 2 and variable in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_shotrun_emulator_serves_each_wire_format(provider: str) -> None:
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "runner", "emulator", "--provider",
                             provider], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        path = ("/v1/videos/omni-video/1" if provider == "kling"
                else "/fal-ai/kling-video/requests/1/status")
        try:
            urllib.request.urlopen(base + path, timeout=10)
            raise AssertionError("no key was accepted")
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
            assert exc.code == 401
        assert answer.get("code") == 1001 if provider == "kling" else "detail" in answer
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert ("the Kling API" if provider == "kling" else "fal.ai's queue API") in err


async def test_kling_two_projects_on_one_account_never_adopt_each_others_tasks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Kling keeps external_task_id per account: the same takes in two output folders (a
    copied project, or one folder wiped and rendered again) choose different ids, so each
    renders its own videos; none "finds" the other's task."""
    from runner.state import StateStore, store_path_for

    expected = keys(monkeypatch, "kling")
    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        root.mkdir()
    async with run_emulator(fast_emulator(api_key=expected), provider="kling") as emulator:
        for root in (first, second):
            manifest = write_manifest(root, THREE, api="  provider: kling\n")
            assert await main_in_thread(["run", str(manifest), "--base-url",
                                         emulator.base_url, *FAST_FLAGS]) == 0
        stats = emulator.stats()
    assert stats["accepted_tasks"] == 6  # three takes each: no creation was adopted
    tasks = []
    for root in (first, second):
        with StateStore.open_readonly(store_path_for(root / "out")) as store:
            tasks.append({record.key: record.task_id for record in store.records()})
    assert tasks[0].keys() == tasks[1].keys()
    assert all(tasks[0][key] != tasks[1][key] for key in tasks[0])


def test_a_store_from_before_salts_keeps_the_ids_its_creations_carry(tmp_path: Path) -> None:
    """A store that sent creations before salts existed keeps the empty salt: a lost answer
    of one of them is looked up by the id it was really sent with."""
    from runner.state import StateStore
    from tests.helpers.state import make_take, payloads

    takes = [make_take()]
    path = tmp_path / "state.sqlite"
    with StateStore.open(path) as store:
        store.sync(takes, payloads(takes))
        assert len(store.client_salt()) == 32  # nothing sent yet: its own random salt
    legacy = tmp_path / "legacy.sqlite"
    with StateStore.open(legacy) as store:  # as the previous version left it: a creation
        store.sync(takes, payloads(takes))  # sent (its answer lost), no salt recorded
        store.mark_submitting(takes[0].key, {}, None)
        assert store.client_salt() == ""
    with StateStore.open(legacy) as store:
        assert store.client_salt() == ""  # kept, not made anew
