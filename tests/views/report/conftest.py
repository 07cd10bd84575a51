"""The report tests' shared run: a manifest run to the end, its report and trace written."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from tests.helpers.report import make_image

MANIFEST = """\
version: 1
name: finished-run
output_dir: renders
api:
  base_url: emulator
  concurrency: 3
  emulator: {queue_time: 0.05, processing_time: 0.2}
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
    prompt: "<script>document.title='pwned';window.__pwned=1</script> @hero looks"
    elements: [hero]
    aspect_ratio: "9:16"
    tags: [act2]
"""


@pytest.fixture
def finished(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A manifest whose run has finished, with its report and trace written."""
    make_image(tmp_path / "assets" / "coast.png", (30, 140, 190))
    make_image(tmp_path / "assets" / "hero.png", (200, 90, 60))
    manifest = tmp_path / "finished.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    assert main(["--quiet", "run", str(manifest)]) == 0, capsys.readouterr()
    assert main(["report", str(manifest), "--csv"]) == 0
    assert "report of 3 takes: 3 done" in capsys.readouterr().out
    return manifest

