"""Make the README's pictures: ``docs/report.png`` and ``docs/progress.svg``.

    .venv/bin/python docs/make_pictures.py

``report.png``: a small demo manifest (its reference images drawn here) is rendered on the
built-in emulator with ``shotrun run``, then ``shotrun report`` writes its contact sheet, and
headless Chromium (Debian's ``chromium``) takes a screenshot of it from ``file://``.

``progress.svg``: the live panel of ``shotrun run`` for a mid-run snapshot, exported by rich.
The snapshot is made up (a real run on the emulator is over in seconds), but it is drawn by the
same function the live display uses.

Nothing leaves the machine: the emulator listens on 127.0.0.1 and Chromium runs with
background networking off.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from rich.console import Console

from runner.cli import main as shotrun
from runner.cli.progress import render_progress
from runner.scheduler.snapshot import RunProgress, TakeProgress

DOCS = Path(__file__).resolve().parent
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio",
)

DEMO = """\
version: 1
name: coastline-teaser
output_dir: renders
api:
  base_url: emulator
  concurrency: 4
  emulator: {queue_time: 0.2, processing_time: 0.8, seed: 3, failure_rate: 0.25,
             failure_codes: [content_policy_violation]}
assets:
  coast: assets/coast.png
  cliff: assets/cliff.png
elements:
  hero:
    frontal: assets/hero.png
    references: [assets/hero_side.png]
defaults:
  resolution: 720p
  duration: 3
shots:
  - id: s01-arrival
    prompt: "The coastline of @coast at dawn; @hero walks out of the morning mist"
    images: [coast]
    elements: [hero]
    takes: 2
    tags: [act1]
  - id: s02-cliff
    prompt: "Wide shot of @cliff, waves breaking; @hero stops at the edge"
    images: [cliff]
    elements: [hero]
    takes: 2
    tags: [act1]
  - id: s03-look
    prompt: "Close-up of @hero looking at the sea"
    elements: [hero]
    aspect_ratio: "9:16"
    tags: [act2]
"""

PICTURES = {
    "coast.png": ((28, 120, 170), (230, 200, 140)),
    "cliff.png": ((90, 80, 70), (40, 110, 160)),
    "hero.png": ((190, 80, 60), (250, 220, 190)),
    "hero_side.png": ((150, 60, 50), (240, 200, 170)),
}


def _draw(path: Path, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> None:
    """A 400x400 vertical gradient: enough to tell the references apart on the page."""
    image = Image.new("RGB", (400, 400))
    for y in range(400):
        mix = y / 399
        colour = tuple(round(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True))
        for x in range(400):
            image.putpixel((x, y), colour)  # type: ignore[arg-type]
    image.save(path)


def make_report_png(target: Path, chromium: str) -> None:
    with tempfile.TemporaryDirectory(prefix="shotrun-docs-") as tmp:
        root = Path(tmp)
        (root / "assets").mkdir()
        for name, (top, bottom) in PICTURES.items():
            _draw(root / "assets" / name, top, bottom)
        manifest = root / "coastline-teaser.yaml"
        manifest.write_text(DEMO, encoding="utf-8")
        code = shotrun(["--quiet", "run", str(manifest)])
        if code not in (0, 1):  # 1: the failure the demo injects, to show one on the page
            sys.exit(f"make_pictures: the demo run exited {code}")
        if shotrun(["report", str(manifest)]) != 0:
            sys.exit("make_pictures: shotrun report failed")
        report = root / "renders" / "report.html"
        shot = root / "shot.png"
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={root / 'profile'}",
             "--window-size=1280,1000", f"--screenshot={shot}", report.as_uri()],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
        )
        with Image.open(shot) as image:
            small = image.convert("RGB").resize((1024, 800), Image.Resampling.LANCZOS)
            small.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(
                target, optimize=True)


def sample_progress() -> RunProgress:
    task = "task-unified-17571697{}"
    takes = (
        TakeProgress("s04-lighthouse/take-1", "processing", 82, task.format("43-7cvnl5zw")),
        TakeProgress("s04-lighthouse/take-2", "processing", 64, task.format("51-q2m8dd0a")),
        TakeProgress("s05-storm.16x9/take-1", "processing", 35, task.format("82-k1x0pz7e")),
        TakeProgress("s05-storm.9x16/take-1", "pending", 0, task.format("95-0fwa9b3n")),
    )
    return RunProgress(
        total=24, done=9, failed=1, in_flight=4, queued=8, downloading=1, submitting=1,
        ambiguous=0, held=0, credits_reserved=1093.5, max_credits=2000.0, started_at=0.0,
        concurrency_limit=4, takes=takes, durations=(118.0, 131.0, 142.0, 125.0, 137.0),
    )


def make_progress_svg(target: Path) -> None:
    console = Console(record=True, width=100, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(render_progress(sample_progress(), now=754.0))
    console.save_svg(str(target), title="shotrun run coastline-teaser.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="where to write the pictures")
    parser.add_argument("--skip-report", action="store_true", help="only progress.svg")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make_progress_svg(args.out / "progress.svg")
    print(f"wrote {args.out / 'progress.svg'}")
    if not args.skip_report:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            sys.exit("make_pictures: install Debian's chromium (apt-get install chromium)")
        make_report_png(args.out / "report.png", chromium)
        print(f"wrote {args.out / 'report.png'}")


if __name__ == "__main__":
    main()
