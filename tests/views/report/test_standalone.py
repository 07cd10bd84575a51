"""``shotrun report --standalone``: a page that can be moved or mailed (issue 22, part 6).

A real run on the built-in emulator, then the stand-alone page is moved with the video
folders into another folder, away from ``.shotrun/``: every poster is inside the page, every
video path resolves next to it, and the page says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from runner.cli import main
from runner.views.report.render import FOLDER_NOTE
from tests.helpers.report_page import parse


def test_the_standalone_page_inlines_posters_and_plays_videos_next_to_it(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(finished), "--standalone"]) == 0
    renders = finished.parent / "renders"
    page = renders / "report-standalone.html"
    assert capsys.readouterr().out.strip() == f"shotrun: report of 3 takes: 3 done: {page}"

    moved = tmp_path / "mailed"
    moved.mkdir()
    shutil.copy(page, moved / page.name)
    for shot in ("s01-arrival", "s02-look"):
        shutil.copytree(renders / shot, moved / shot)
    text = (moved / page.name).read_text(encoding="utf-8")
    assert ".shotrun" not in text
    root = parse(text)
    videos = root.find_all("video")
    assert sorted(v.attrs["src"] for v in videos) == [
        "s01-arrival/take-1.mp4", "s01-arrival/take-2.mp4", "s02-look/take-1.mp4"]
    for video in videos:
        assert (moved / unquote(video.attrs["src"])).is_file()
        assert video.attrs["poster"].startswith("data:image/jpeg;base64,")
    note = root.find("div", "standalone").text()
    assert note == (
        "Stand-alone page: the posters are inside it; the videos are the files next to it, "
        "referred to by their paths relative to this page (such as s01-arrival/take-1.mp4). "
        "Move or mail it with those folders to play them; alone, it shows the stills.")


def test_the_usual_page_says_it_needs_its_folder_and_how_to_get_one_that_moves(
        finished: Path) -> None:
    text = (finished.parent / "renders" / "report.html").read_text(encoding="utf-8")
    assert FOLDER_NOTE == ("This page shows posters kept in .shotrun/posters/ beside it and "
                           "works where it is; `shotrun report --standalone` (spends nothing) "
                           "writes a page that can be moved or mailed.")
    assert parse(text).find("div", "folder").text() == FOLDER_NOTE
