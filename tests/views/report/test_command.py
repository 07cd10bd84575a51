"""``shotrun report`` through the real command line: manifest in, report (and CSV) out."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main
from tests.helpers.report import make_image
from tests.helpers.report_page import parse

MANIFEST = """\
version: 1
name: cmd-demo
output_dir: renders
api:
  base_url: emulator
assets:
  coast: assets/coast.png
elements:
  hero:
    frontal: assets/hero.png
defaults:
  duration: 3
shots:
  - id: s01-arrival
    prompt: "The coastline of @coast; @hero walks out of the mist"
    images: [coast]
    elements: [hero]
    takes: 2
    tags: [act1]
  - id: s02-look
    prompt: "<script>document.title='pwned'</script> @hero looks"
    elements: [hero]
    tags: [act2]
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    make_image(tmp_path / "assets" / "coast.png", (30, 140, 190))
    make_image(tmp_path / "assets" / "hero.png", (200, 90, 60))
    path = tmp_path / "demo.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    return path


def test_report_before_any_run_shows_every_take_as_new(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(manifest)]) == 0
    out, err = capsys.readouterr()
    report = manifest.parent / "renders" / "report.html"
    assert f"report of 3 takes: 3 new: {report}" in out
    assert "no run of" in err
    root = parse(report.read_text(encoding="utf-8"))
    tiles = root.find_all("article", "tile")
    assert sorted(t.attrs["data-key"] for t in tiles) == [
        "s01-arrival/take-1", "s01-arrival/take-2", "s02-look/take-1"]
    assert {t.attrs["data-status"] for t in tiles} == {"new"}
    assert root.find_all("script")[0].text().lstrip().startswith("(function")
    assert len(root.find_all("script")) == 1
    # @coast and @hero were rewritten by the manifest loader, and are highlighted as such.
    marks = [m.text() for m in root.find("section", "shot").find_all("mark")]
    assert marks == ["@Image1", "@Element1"]


def test_csv_goes_to_the_output_dir_or_where_asked(manifest: Path) -> None:
    assert main(["report", str(manifest), "--csv"]) == 0
    default = manifest.parent / "renders" / "trace.csv"
    with default.open(newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle))[:4] == ["id", "shot", "take", "status"]
    elsewhere = manifest.parent / "out" / "t.csv"
    assert main(["report", "--csv-file", str(elsewhere), str(manifest)]) == 0
    assert elsewhere.read_text(encoding="utf-8") == default.read_text(encoding="utf-8")


def test_a_csv_path_that_cannot_be_a_file_is_one_line_and_nothing_is_written(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = manifest.parent / "a-folder"
    folder.mkdir()
    blocker = manifest.parent / "a-file"
    blocker.write_text("in the way", encoding="utf-8")
    report = manifest.parent / "renders" / "report.html"
    for where, said in ((folder, "is a folder"), (blocker / "t.csv", "is a file, not a folder")):
        assert main(["report", str(manifest), "--csv-file", str(where)]) == 2
        err = capsys.readouterr().err
        assert said in err and str(where) in err and "Traceback" not in err, err
        assert not report.exists()  # checked before anything is written


def test_invalid_manifest_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\nshots: []\nbogus: 1\n", encoding="utf-8")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Traceback" not in err
    assert not (tmp_path / "renders").exists()


def test_open_hands_the_report_to_the_browser(manifest: Path, tmp_path: Path,
                                              repo_root: Path) -> None:
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(seen)!r}, 'w').write(sys.argv[1])\n",
                       encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env.update(BROWSER=f"{sys.executable} {browser} %s", PYTHONPATH=str(repo_root))
    result = subprocess.run([sys.executable, "-m", "runner", "report", str(manifest), "--open"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert seen.read_text() == (manifest.parent / "renders" / "report.html").as_uri()
