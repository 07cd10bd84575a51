"""Draw the demo's reference images with Pillow (committed; re-run to regenerate them).

    python manifests/assets/make_assets.py

Every side is at least 300 px and the aspect ratios stay within 1:2.5..2.5:1 (what the
gateway documents for image inputs); flat shapes keep the files small (well under 1 MB in all).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SKY, SEA, SAND, ROCK = (150, 190, 230), (30, 90, 150), (220, 200, 150), (110, 100, 95)


def coast(path: Path) -> None:
    """A beach under a low sun: the establishing shot's look."""
    image = Image.new("RGB", (640, 360), SKY)
    draw = ImageDraw.Draw(image)
    draw.ellipse((440, 60, 520, 140), fill=(250, 210, 120))
    draw.rectangle((0, 200, 640, 290), fill=SEA)
    draw.polygon([(0, 290), (640, 260), (640, 360), (0, 360)], fill=SAND)
    for x in range(20, 640, 60):
        draw.arc((x, 215, x + 40, 235), 200, 340, fill=(230, 240, 250), width=3)
    image.save(path, quality=85)


def cliff(path: Path) -> None:
    """A cliff with a lighthouse: the end frame of the arrival."""
    image = Image.new("RGB", (640, 360), (120, 150, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 240, 640, 360), fill=SEA)
    draw.polygon([(300, 360), (380, 150), (640, 120), (640, 360)], fill=ROCK)
    draw.rectangle((520, 40, 548, 125), fill=(240, 240, 240))
    draw.rectangle((520, 70, 548, 85), fill=(200, 40, 40))
    draw.polygon([(514, 40), (554, 40), (534, 22)], fill=(60, 60, 60))
    image.save(path, quality=85)


def figure(path: Path, facing: str) -> None:
    """The hero: a simple figure in a red coat, seen from the front or the side."""
    image = Image.new("RGB", (400, 600), (235, 235, 230))
    draw = ImageDraw.Draw(image)
    head = (160, 60, 240, 150) if facing == "front" else (170, 60, 240, 150)
    draw.ellipse(head, fill=(230, 190, 160))
    draw.rectangle((150, 40, 250, 80), fill=(60, 40, 30))
    if facing == "front":
        draw.ellipse((180, 95, 190, 105), fill=(30, 30, 30))
        draw.ellipse((210, 95, 220, 105), fill=(30, 30, 30))
        draw.polygon([(130, 160), (270, 160), (290, 420), (110, 420)], fill=(190, 40, 40))
    else:
        draw.ellipse((222, 95, 232, 105), fill=(30, 30, 30))
        draw.polygon([(160, 160), (250, 160), (265, 420), (150, 420)], fill=(190, 40, 40))
    draw.rectangle((155, 420, 190, 560), fill=(40, 50, 80))
    draw.rectangle((210, 420, 245, 560), fill=(40, 50, 80))
    image.save(path, optimize=True)


def gull(path: Path) -> None:
    """A seagull, the second element."""
    image = Image.new("RGB", (480, 320), SKY)
    draw = ImageDraw.Draw(image)
    draw.ellipse((190, 140, 300, 190), fill=(250, 250, 250))
    draw.polygon([(200, 160), (60, 100), (230, 150)], fill=(200, 200, 205))
    draw.polygon([(280, 160), (420, 100), (260, 150)], fill=(200, 200, 205))
    draw.polygon([(300, 160), (330, 168), (300, 172)], fill=(240, 170, 40))
    draw.ellipse((283, 152, 290, 159), fill=(20, 20, 20))
    image.save(path, optimize=True)


def main() -> None:
    coast(HERE / "coast.jpg")
    cliff(HERE / "cliff.jpg")
    figure(HERE / "hero_front.png", "front")
    figure(HERE / "hero_side.png", "side")
    gull(HERE / "gull.png")


if __name__ == "__main__":
    main()
