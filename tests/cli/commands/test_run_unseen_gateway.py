"""``shotrun run`` against a gateway unlike the one shotrun expected (issue 14).

The built-in emulator plays it: videos at other sizes than the nominal ones
(``output_scale``), no progress at all, whole-second hints that round a short task to 0.
Each test runs the whole CLI and reads the results back through ``status --json``, the
sidecars and the CSV trace. Rule: enforce what the documentation states or what makes a file
unusable; observe and report everything else.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runner import cli
from tests.helpers.run import FAST_FLAGS

SHOTS = """\
  - id: wide
    prompt: "a lighthouse at dawn"
    takes: 2
  - id: tall
    prompt: "a gull over the cliff"
    aspect_ratio: "9:16"
    generate_audio: true
"""


def write(root: Path, *, emulator: str, verify: str = "") -> Path:
    path = root / "shots.yaml"
    path.write_text(
        "version: 1\nname: unseen\noutput_dir: out\n"
        "api:\n  base_url: emulator\n  submit_rate: 50\n"
        f"  emulator: {{queue_time: 0.01, processing_time: 0.05, {emulator}}}\n"
        f"{verify}"
        "defaults: {resolution: 720p, duration: 3}\n"
        f"shots:\n{SHOTS}",
        encoding="utf-8",
    )
    return path


def status_json(manifest: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert cli.main(["status", str(manifest), "--json"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_other_sizes_are_done_recorded_and_warned_once_per_size(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, emulator="output_scale: 0.125")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "done: 3/3" in out
    # Each distinct size once, with its count: not once per take.
    assert out.count("160x90 where 1280x720 was expected") == 1
    assert ("warning: done at another size than expected: 2 takes, 160x90 where 1280x720 "
            "was expected") in out
    assert "1 take, 90x160 where 720x1280 was expected" in out

    takes = {t["id"]: t for t in status_json(manifest, capsys)["takes"]}
    assert all(t["status"] == "done" for t in takes.values())
    wide, tall = takes["wide/take-1"], takes["tall/take-1"]
    assert (wide["width"], wide["height"], wide["fps"], wide["codec"]) == (160, 90, 24, "h264")
    assert (wide["audio_codec"], tall["audio_codec"]) == (None, "aac")
    assert (tall["width"], tall["height"]) == (90, 160)
    assert wide["size_warning"] == "160x90 where 1280x720 was expected"

    sidecar = json.loads((tmp_path / "out" / "tall" / "take-1.json").read_text())
    assert sidecar["video"]["width"] == 90 and sidecar["video"]["expected_size"] == [720, 1280]
    assert sidecar["video"]["expected_from"] == "nominal"

    assert cli.main(["status", str(manifest)]) == 0
    table = capsys.readouterr().out
    assert "done, chosen, 160x90 where 1280x720 was expected" in table
    assert "warning: 2 takes done at 160x90 where 1280x720 was expected" in table

    assert cli.main(["report", str(manifest), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(
        (tmp_path / "out" / "trace.csv").read_text(encoding="utf-8"))))
    row = next(r for r in rows if r["id"] == "wide/take-2")
    assert (row["width"], row["height"], row["size_warning"]) == (
        "160", "90", "160x90 where 1280x720 was expected")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "size 160x90 where 1280x720 was expected" in page


def test_strict_fails_them_as_before_and_warn_then_adopts_the_paid_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, emulator="output_scale: 0.5", verify="verify: {size: strict}\n")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 1
    out = capsys.readouterr().out
    assert "verify_failed" in out and "(verify.size is strict)" in out
    takes = {t["id"]: t for t in status_json(manifest, capsys)["takes"]}
    assert {t["status"] for t in takes.values()} == {"failed"}
    assert (tmp_path / "out" / "wide" / "take-1.rejected.mp4").is_file()

    # The same manifest with the flag saying warn: the kept paid files are checked again and
    # adopted; nothing is created (paid) again.
    creations_before = _creations(tmp_path)
    assert cli.main(["run", str(manifest), "--verify-size", "warn", *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "done: 3/3" in out and "640x360 where 1280x720 was expected" in out
    assert _creations(tmp_path) == creations_before
    takes = {t["id"]: t for t in status_json(manifest, capsys)["takes"]}
    assert {t["status"] for t in takes.values()} == {"done"}
    assert (takes["wide/take-1"]["width"], takes["wide/take-1"]["height"]) == (640, 360)
    assert (tmp_path / "out" / "wide" / "take-1.mp4").is_file()
    assert not (tmp_path / "out" / "wide" / "take-1.rejected.mp4").exists()


def test_retry_failed_checks_the_kept_file_before_paying_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strict = write(tmp_path, emulator="output_scale: 0.5", verify="verify: {size: strict}\n")
    assert cli.main(["run", str(strict), *FAST_FLAGS]) == 1
    before = _creations(tmp_path)
    assert cli.main(["run", str(strict), "--retry-failed", "--verify-size", "off",
                     *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    assert _creations(tmp_path) == before  # adopted, not paid for again
    assert "where 1280x720 was expected" not in out.split("done: 3/3")[1]  # off: no warning
    takes = status_json(strict, capsys)["takes"]
    assert all(t["status"] == "done" and t["size_warning"] is None for t in takes)
    assert {(t["width"], t["height"]) for t in takes} == {(640, 360), (360, 640)}


def test_off_records_the_size_without_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, emulator="output_scale: 0.25", verify="verify: {size: off}\n")
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "was expected" not in capsys.readouterr().out
    takes = status_json(manifest, capsys)["takes"]
    assert {(t["width"], t["height"], t["size_warning"]) for t in takes} == {
        (320, 180, None), (180, 320, None)}


@pytest.mark.parametrize(
    "emulator",
    ["progress: none", "progress: none, estimate_factor: 0.3", "estimate_factor: 40",
     "output_scale: 0.75, progress: none, jitter: 0.5"],
    ids=["no-progress", "no-progress-hint-too-low", "hint-far-too-high", "all-at-once"],
)
def test_rough_gateways_still_finish_every_take(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], emulator: str) -> None:
    manifest = write(tmp_path, emulator=emulator)
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    assert "done: 3/3" in capsys.readouterr().out
    takes = status_json(manifest, capsys)["takes"]
    assert all(t["status"] == "done" and t["width"] for t in takes)


def test_a_wrong_verify_value_is_a_located_manifest_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, emulator="seed: 1", verify="verify: {size: lenient}\n")
    assert cli.main(["run", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "shots.yaml:8:16: verify.size: 'lenient' is not one of 'warn', 'strict', 'off'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written, nothing sent
    assert cli.main(["run", str(manifest), "--verify-size", "loose"]) == 2
    assert "invalid choice: 'loose'" in capsys.readouterr().err


def _creations(root: Path) -> int:
    """Creation requests that reached the gateway, from the store's ledger."""
    with sqlite3.connect(root / "out" / ".shotrun" / "state.sqlite") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])


def test_a_probe_of_this_gateway_replaces_the_nominal_sizes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, emulator="output_scale: 0.125")
    assert cli.main(["probe", str(manifest), "--spend"]) == 0
    capsys.readouterr()
    assert cli.main(["run", str(manifest), *FAST_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "expected sizes: observed by `shotrun probe` of the built-in emulator on " in out
    assert "derived from what it observed for 720p 9:16" in out
    assert "was expected" not in out  # the sizes this gateway renders are the expected ones
    takes = {t["id"]: t for t in status_json(manifest, capsys)["takes"]}
    assert all(t["status"] == "done" and t["size_warning"] is None for t in takes.values())
    sidecar = json.loads((tmp_path / "out" / "tall" / "take-1.json").read_text())
    assert sidecar["video"]["expected_size"] == [90, 160]
    assert sidecar["video"]["expected_from"] == "observed"
