"""``shotrun status``: read-only, beside a live run, table and stable JSON trace records."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import cli
from runner.core.model import Manifest
from runner.manifest import load_manifest
from runner.state import StateStore, store_path_for
from runner.state.trace import TRACE_FIELDS
from runner.wire.payload import build_payload, fingerprint_resolver

MANIFEST = """\
version: 1
name: status-demo
api: {base_url: emulator}
budget: {max_credits: 500}
shots:
  - id: s01-arrival
    prompt: "a lighthouse at dawn"
    takes: 2
    tags: [act1]
  - id: s02-look
    prompt: "waves on the rocks"
    matrix: {aspect_ratio: ["16:9", "9:16"]}
"""
A1, A2, L16, L9 = ("s01-arrival/take-1", "s01-arrival/take-2", "s02-look.16x9/take-1",
                   "s02-look.9x16/take-1")


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    path = tmp_path / "shots.yaml"
    path.write_text(MANIFEST)
    return path


@pytest.fixture
def manifest(manifest_path: Path) -> Manifest:
    return load_manifest(manifest_path)


@pytest.fixture
def writer(manifest: Manifest) -> Iterator[StateStore]:
    """A run in progress: the store is open for writing (and locked) for the whole test."""
    with StateStore.open(store_path_for(manifest)) as store:
        store.sync(manifest.takes, {t.key: build_payload(t.request, fingerprint_resolver)
                                    for t in manifest.takes})
        yield store


def _status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["status", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code, out, _err = _status(capsys, *args, "--json")
    assert code == 0
    document = json.loads(out)
    assert isinstance(document, dict)
    return document


def _progress(store: StateStore, manifest: Manifest) -> None:
    """One take done, one failed, one in flight, one never started."""
    out = manifest.output_dir
    store.mark_submitting(A1, {"prompt": "p"}, 40.5)
    store.mark_submitted(A1, "task-a1", credits_reserved=40.0)
    store.record_poll(A1)
    store.record_poll(A1)
    store.mark_completed(A1, "https://cdn/a1.mp4")
    video = out / "s01-arrival" / "take-1.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\0" * 1000)  # done means on disk: the file is there, as recorded
    store.mark_done(A1, video, 1000, "ab" * 32, 5.0)
    store.mark_submitting(A2, {"prompt": "p"}, 40.5)
    store.mark_submitted(A2, "task-a2")
    store.mark_failed(A2, "permanent", "content_policy_violation", "[bold]refused[/bold] by policy")
    store.mark_submitting(L16, {"prompt": "p"}, 40.5)
    store.mark_submitted(L16, "task-l16", credits_reserved=41.0)
    store.mark_progress(L16, "processing", 42)


def test_before_any_run_it_says_so_and_lists_the_takes(
    capsys: pytest.CaptureFixture[str], manifest_path: Path
) -> None:
    code, out, err = _status(capsys, str(manifest_path))
    assert code == 0, err
    assert "No run yet" in out and f"shotrun run {manifest_path}" in out
    assert "4 takes: 4 new" in out
    document = _json(capsys, str(manifest_path))
    assert document["run"] is False and document["running_pid"] is None
    takes = document["takes"]
    assert isinstance(takes, list)
    assert [t["id"] for t in takes] == [A1, A2, L16, L9]
    assert {t["status"] for t in takes} == {"new"}
    assert not store_path_for(load_manifest(manifest_path)).parent.exists()  # nothing written


def test_table_beside_a_live_run(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
    writer: StateStore,
) -> None:
    _progress(writer, manifest)
    code, out, err = _status(capsys, str(manifest_path))
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines() if "/take-" in line}
    assert f"A run is going (pid {os.getpid()})" in out
    assert "done" in lines[A1] and "task-a1" in lines[A1] and "s01-arrival/take-1.mp4" in lines[A1]
    assert "failed (permanent)" in lines[A2] and "[bold]refused[/bold] by policy" in lines[A2]
    assert "submitted 42%" in lines[L16] and "task-l16" in lines[L16]
    assert "new" in lines[L9]
    assert ("4 takes: 1 done, 1 submitted, 1 failed, 1 new; 121.5 credits committed of 500"
            in out)
    # The writer goes on while status reads: the next status sees the next commit.
    writer.mark_completed(L16, "https://cdn/l16.mp4")
    assert "completed" in _status(capsys, str(manifest_path))[1]


def test_json_trace_records_have_the_documented_fields(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
    writer: StateStore,
) -> None:
    _progress(writer, manifest)
    document = _json(capsys, str(manifest_path))
    assert set(document) == {"manifest", "provider", "last_run_provider", "state", "run",
                             "running_pid", "warning", "takes", "totals", "next_run"}
    # No run recorded a provider in this store (the fixture's writer is no run).
    assert document["provider"] == "gateway" and document["last_run_provider"] is None
    assert document["run"] is True and document["warning"] is None
    assert document["running_pid"] == os.getpid()  # the writer fixture is this process
    assert document["state"] == str(store_path_for(manifest))
    takes = {t["id"]: t for t in document["takes"]}  # type: ignore[union-attr]
    for record in takes.values():
        assert tuple(record) == TRACE_FIELDS
    done = takes[A1]
    assert (done["shot"], done["take"], done["status"]) == ("s01-arrival", 1, "done")
    assert (done["task_id"], done["polls"], done["credits"]) == ("task-a1", 2, 40.0)
    assert done["output"] == "s01-arrival/take-1.mp4"
    assert done["sha256"] == "ab" * 32
    assert done["error"] is None and done["attempts"] == 1 and done["reason"] == "new"
    for moment in ("submitted", "completed", "downloaded"):
        assert str(done[moment]).endswith("Z")
    assert isinstance(done["wall_seconds"], float) and done["wall_seconds"] >= 0
    assert done["tags"] == ["act1"]
    failed = takes[A2]
    assert (failed["status"], failed["failure_kind"], failed["error_code"]) == (
        "failed", "permanent", "content_policy_violation")
    assert failed["error"] == "[bold]refused[/bold] by policy"
    assert failed["credits"] == 40.5  # no figure from the gateway: the estimate
    assert takes[L16]["progress"] == 42
    assert takes[L9]["status"] == "new" and takes[L9]["attempts"] == 0
    totals = document["totals"]
    assert totals == {
        "takes": 4, "new": 1, "submitting": 0, "ambiguous": 0, "held": 0, "submitted": 1,
        "completed": 0, "downloading": 0, "done": 1, "failed": 1, "credits": 121.5,
        "credits_committed": 121.5, "ambiguous_submissions": 0, "max_credits": 500.0,
        "not_in_manifest": 0,
        # Per unit of money (issue 21): the takes' figures, the ledger and the caps.
        "money": {"credits": {"total": 121.5, "charged": 81.0, "estimated": 40.5}},
        "committed": {"credits": 121.5}, "caps": {"credits": 500.0}, "unit": "credits",
    }


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("act1", [A1, A2], id="tag"),
        pytest.param("s02-look", [L16, L9], id="id-before-matrix"),
        pytest.param("s02-look.9x16", [L9], id="shot-id"),
        pytest.param(A2, [A2], id="take-id"),
    ],
)
def test_only_restricts_the_takes_and_their_totals(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
    writer: StateStore, selector: str, expected: list[str],
) -> None:
    _progress(writer, manifest)
    document = _json(capsys, str(manifest_path), "--only", selector)
    assert [t["id"] for t in document["takes"]] == expected  # type: ignore[union-attr]
    assert document["totals"]["takes"] == len(expected)  # type: ignore[index]


def test_only_with_an_unknown_selector_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], manifest_path: Path
) -> None:
    code, _out, err = _status(capsys, str(manifest_path), "--only", "nothing-like-it")
    assert code == 2
    assert "--only nothing-like-it: no shot id or tag" in err
    assert "Traceback" not in err


def test_a_take_whose_prompt_changed_since_says_it_will_render_again(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
    writer: StateStore,
) -> None:
    _progress(writer, manifest)
    manifest_path.write_text(MANIFEST.replace("a lighthouse at dawn", "a lighthouse at dusk"))
    takes = {t["id"]: t for t in _json(capsys, str(manifest_path))["takes"]}  # type: ignore[union-attr]
    assert takes[A1]["status"] == "done"
    assert takes[A1]["reason"] == "changed since: the next run renders it again"
    assert takes[L16]["reason"] == "new"
    line = next(x for x in _status(capsys, str(manifest_path))[1].splitlines() if A1 in x)
    assert "done, changed since" in line


def test_a_manifest_that_no_longer_loads_still_shows_the_store(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
    writer: StateStore,
) -> None:
    _progress(writer, manifest)
    manifest_path.write_text(MANIFEST.replace("takes: 2", "takes: 2\n    colour: blue"))
    code, out, err = _status(capsys, str(manifest_path))
    assert code == 0
    assert "does not load any more" in err and "colour" in err
    assert "task-a1" in out and "4 takes:" in out


def test_an_unreadable_manifest_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nshots: [\n")
    code, _out, err = _status(capsys, str(path))
    assert code == 2
    assert "broken.yaml" in err and "Traceback" not in err


def test_a_store_from_a_newer_shotrun_is_exit_2_with_advice(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
) -> None:
    StateStore.open(store_path_for(manifest)).close()
    raw = sqlite3.connect(store_path_for(manifest))
    raw.execute("UPDATE schema_version SET version = 7")
    raw.commit()
    raw.close()
    code, _out, err = _status(capsys, str(manifest_path))
    assert code == 2
    assert "upgrade shotrun" in err


def test_takes_dropped_from_the_manifest_are_counted_not_listed(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
    writer: StateStore,
) -> None:
    _progress(writer, manifest)
    manifest_path.write_text(MANIFEST.replace("takes: 2", "takes: 1"))
    document = _json(capsys, str(manifest_path))
    assert [t["id"] for t in document["takes"]] == [A1, L16, L9]  # type: ignore[union-attr]
    assert document["totals"]["not_in_manifest"] == 1  # type: ignore[index]
    assert "1 take in the store is no longer in the manifest" in _status(
        capsys, str(manifest_path))[1]


def test_after_the_run_ended_no_run_is_said_to_be_going(
    capsys: pytest.CaptureFixture[str], manifest_path: Path, manifest: Manifest,
    writer: StateStore,
) -> None:
    _progress(writer, manifest)
    writer.close()
    code, out, _err = _status(capsys, str(manifest_path))
    assert code == 0 and "A run is going" not in out and "task-a1" in out
    assert _json(capsys, str(manifest_path))["running_pid"] is None
