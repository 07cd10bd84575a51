"""The report as a browser sees it: headless Chromium (Debian's ``chromium``) from ``file://``.

Skipped, with the reason, on a machine without Chromium (``.ci/run`` installs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.views.report import write_report
from tests.helpers.browser import chromium, evaluate, find_chromium, open_page
from tests.helpers.report import demo_manifest, demo_records
from tests.helpers.report_videos import VIDEOS, WATCH

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


def _report(tmp_path: Path) -> Path:
    manifest = demo_manifest(tmp_path)
    return write_report(manifest, demo_records(manifest)).path


def test_videos_load_and_injected_script_does_not_run(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    report = _report(tmp_path)
    with chromium(CHROMIUM, tmp_path / "profile") as tools:
        session = open_page(tools, report.as_uri(), before_load=WATCH)
        videos = evaluate(tools, session, VIDEOS)
        title = evaluate(tools, session, "document.title")
        pwned = evaluate(tools, session, "typeof window.__pwned")
        violations = evaluate(tools, session, "window.__violations")
        tiles = evaluate(tools, session, "document.querySelectorAll('article.tile').length")
        prompt = evaluate(tools, session,
                          "document.querySelector('#shot-s02-look .prompt').textContent")
    assert {video["key"] for video in videos} == {"s01-arrival/take-1", "s02-look/take-1"}
    for video in videos:
        assert video["error"] is None and video["readyState"] >= 1, video
        assert video["duration"] == pytest.approx(1.0, abs=0.2)
    assert tiles == 4
    assert title == "demo-run · shotrun report"
    assert pwned == "undefined"
    assert prompt.startswith("<script>document.title='pwned'")
    assert violations == []


FILTER = """
(function () {
  function visible() {
    return Array.from(document.querySelectorAll('article.tile'))
      .filter(function (t) { return !t.closest('[hidden]'); })
      .map(function (t) { return t.getAttribute('data-key'); }).sort();
  }
  var out = {all: visible()};
  document.querySelector('input[data-kind=status][value=failed]').click();
  document.querySelector('input[data-kind=status][value=new]').click();
  out.doneOnly = visible();
  out.shown = document.getElementById('shown').textContent;
  document.querySelector('input[data-kind=tag][value=act2]').click();
  out.doneAct2 = visible();
  out.s01Hidden = document.getElementById('shot-s01-arrival').hidden;
  return out;
})()
"""


def test_filters_work_in_the_browser(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    report = _report(tmp_path)
    with chromium(CHROMIUM, tmp_path / "profile") as tools:
        session = open_page(tools, report.as_uri())
        out = evaluate(tools, session, FILTER)
    assert len(out["all"]) == 4
    assert out["doneOnly"] == ["s01-arrival/take-1", "s02-look/take-1"]
    assert out["shown"] == "2"
    assert out["doneAct2"] == ["s02-look/take-1"]
    assert out["s01Hidden"] is True
