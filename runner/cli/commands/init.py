"""``shotrun init [DIR]``: write a starter project that renders as it is.

A newcomer's first manifest should run before it is understood: two shots, a local image
drawn here with Pillow, an element, the built-in emulator (no key, no network, no credits),
the schema line that gives an editor completion, and a ``.gitignore`` for the renders. Every
line of the manifest says what it does, so editing it is the tutorial.

Nothing is ever overwritten: every path is checked before the first one is written, so a
refusal leaves the folder exactly as it was (exit 2, one line).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from typing import Any

from runner.core.errors import EXIT_OK, UsageError
from runner.core.fsutil import atomic_write_bytes, atomic_write_text, make_dirs

MANIFEST_NAME = "shots.yaml"
SCHEMA_NAME = "manifest.schema.json"
PLACE_IMAGE = "assets/place.png"
HERO_IMAGE = "assets/hero.png"
GITIGNORE_NAME = ".gitignore"
STARTER_FILES = (MANIFEST_NAME, SCHEMA_NAME, PLACE_IMAGE, HERO_IMAGE, GITIGNORE_NAME)

_MANIFEST = """\
# yaml-language-server: $schema=manifest.schema.json
# A starter shot list written by `shotrun init`. The line above gives your editor completion.
#   shotrun validate shots.yaml    every problem, located (free)
#   shotrun plan shots.yaml        what a run would render and cost (free)
#   shotrun run shots.yaml         render (here on the built-in emulator: no key, no credits)
version: 1
name: {name}                  # names the output folder: renders/{name}/

api:
  base_url: emulator                  # the built-in local gateway; a real one: https://...
  emulator: {{queue_time: 0.2, processing_time: 1.0}}   # how fast the emulator renders

budget:
  max_credits: 500                    # never reserve more than this over the list's life
  rates: {{720p: 8.1, 1080p: 10.8}}     # credits per second of video, for estimates

assets:
  place: {place}          # a local image: uploaded once, named @place in prompts

elements:
  hero:                               # a subject kept the same from shot to shot: @hero
    frontal: {hero}

defaults: {{resolution: 720p, aspect_ratio: "16:9", duration: 3}}

shots:
  - id: s01-arrival
    prompt: "@hero walks into @place at dawn, mist over the ground"
    images: [place]                   # @place becomes @Image1 for this shot
    elements: [hero]                  # @hero becomes @Element1
    takes: 2                          # two independent renders; pick one later

  - id: s02-look
    prompt: "close-up of @hero looking at the horizon"
    elements: [hero]
    duration: 4                       # seconds; overrides the default
"""

_GITIGNORE = """\
# shotrun's output folder: videos, sidecars and the state store (renders/<name>/)
renders/
"""


def add_parser(subparsers: Any) -> None:
    """Register ``shotrun init``."""
    parser = subparsers.add_parser(
        "init",
        help="write a starter project that runs as is (spends nothing)",
        description=f"Write a starter project into DIR (default: the current folder): "
        f"{MANIFEST_NAME} (two shots, commented), the manifest's JSON Schema for editors, two "
        f"small images under assets/ and a .gitignore for the renders. It renders on the "
        f"built-in emulator as written (spends nothing). Refuses to overwrite any file.",
    )
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR",
                        help="folder to write into (created if missing; default: .)")
    parser.set_defaults(func=run)


def project_name(folder: Path) -> str:
    """A manifest ``name`` from the folder's name (``[a-z0-9][a-z0-9._-]{0,63}``)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", folder.name.lower()).lstrip("._-")[:64]
    return slug or "starter"


def _png(size: tuple[int, int], draw_on: str) -> bytes:
    """A small flat picture (at least 300 px a side, as the gateway documents for inputs)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (150, 190, 230))
    draw = ImageDraw.Draw(image)
    width, height = size
    if draw_on == "place":
        draw.ellipse((width - 180, 50, width - 100, 130), fill=(250, 210, 120))
        draw.rectangle((0, height * 2 // 3, width, height), fill=(90, 140, 80))
    else:
        draw.rectangle((0, 0, width, height), fill=(235, 230, 220))
        draw.ellipse((width // 2 - 70, 60, width // 2 + 70, 200), fill=(230, 190, 160))
        draw.rectangle((width // 2 - 90, 210, width // 2 + 90, height), fill=(60, 90, 150))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    """Write the starter files, or refuse (exit 2) before writing any of them."""
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"init: {folder} is a file, not a folder; name a new or empty folder")
    taken = [name for name in STARTER_FILES if (folder / name).exists()
             or (folder / name).is_symlink()]
    if (folder / "assets").exists() and not (folder / "assets").is_dir():
        taken.insert(0, "assets")
    if taken:
        raise UsageError(f"init: {folder / taken[0]} already exists; nothing written "
                         "(choose another folder: shotrun init DIR)")
    from runner.manifest.schema import schema_text

    name = project_name(folder.resolve())
    make_dirs(folder / "assets")
    atomic_write_bytes(folder / PLACE_IMAGE, _png((640, 360), "place"))
    atomic_write_bytes(folder / HERO_IMAGE, _png((360, 480), "hero"))
    schema = schema_text()
    atomic_write_text(folder / SCHEMA_NAME, schema if schema.endswith("\n") else schema + "\n")
    atomic_write_text(folder / GITIGNORE_NAME, _GITIGNORE)
    atomic_write_text(folder / MANIFEST_NAME, _MANIFEST.format(
        name=name, place=PLACE_IMAGE, hero=HERO_IMAGE))
    where = "" if str(folder) == "." else f"cd {folder} && "
    print(f"shotrun init: wrote {MANIFEST_NAME}, {SCHEMA_NAME}, {PLACE_IMAGE}, {HERO_IMAGE} "
          f"and {GITIGNORE_NAME} in {folder}", file=sys.stderr)
    print(f"next: {where}shotrun run {MANIFEST_NAME}   (built-in emulator: spends nothing)")
    return EXIT_OK
