"""Messages that say what to do (issue 22, part 6), each with its exact text.

Through the real command line (``shotrun validate``) in a folder of real image files.
"""

from __future__ import annotations

import pytest

from runner import cli
from runner.core.errors import EXIT_USAGE
from tests.manifest.conftest import Write


def _validate(write: Write, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    write(text)
    assert cli.main(["validate", "m.yaml"]) == EXIT_USAGE
    out = capsys.readouterr()
    return (out.out + out.err).splitlines()


def test_a_missing_asset_file_says_where_it_looked_and_never_points_at_itself(
        write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _validate(write, """
        version: 1
        name: t
        assets:
          moon: img/../moon.png
        shots:
          - {id: a, prompt: '@moon rises', images: [moon]}
          - {id: b, prompt: p, images: [mon]}
        """, capsys)
    assert lines == [
        "m.yaml:4:9: assets.moon: no such file 'img/../moon.png': looked for moon.png "
        "relative to the manifest's folder and it does not exist; put the image there or "
        "correct the path",
        "m.yaml:7:33: shots[1].images[0]: no such file 'mon': looked for mon relative to the "
        "manifest's folder and it does not exist; put the image there or correct the path "
        "(or did you mean the asset 'moon'?)",
    ]


def test_all_of_a_prompts_problems_are_reported_together(
        write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _validate(write, """
        version: 1
        name: t
        vars: {place: Big Sur}
        shots:
          - {id: a, prompt: '${plac} at @noon, then @Image3'}
        """, capsys)
    assert lines == [
        "m.yaml:3:15: warning: vars.place: variable 'place' is never used in a prompt",
        "m.yaml:5:21: shots[0].prompt: undefined variable ${plac} (did you mean 'place'?); "
        "define it under vars:",
        "m.yaml:5:21: warning: shots[0].prompt: @noon is not an asset or element name; it is "
        "sent as written",
        "m.yaml:5:21: shots[0].prompt: @Image3 points outside the shot's images (it has no "
        "images); add to images: or fix the number",
    ]


def test_a_key_that_lost_its_indentation_is_told_where_it_belongs(
        write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _validate(write, """
        version: 1
        name: t
        budget:
          max_credits: 10
        rates: {720p: 1}
        shots:
          - id: a
        prompt: p
        """, capsys)
    assert lines == [
        "m.yaml:5:1: rates: unknown key 'rates' at this indentation; 'rates' is a key of "
        "'budget': did you mean to indent it under 'budget'?",
        "m.yaml:7:5: shots[0]: shot 'a' has no prompt; add `prompt: ...` (or `multi_prompt:`)",
        "m.yaml:8:1: prompt: unknown key 'prompt' at this indentation; 'prompt' is a key of "
        "'shots': did you mean to indent it under 'shots'?",
    ]


def test_an_unknown_key_valid_nowhere_above_keeps_its_near_miss_hint(
        write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _validate(write, """
        version: 1
        name: t
        budget: {max_credits: 10}
        shotz:
          - {id: a, prompt: p}
        """, capsys)
    assert lines[-1] == "m.yaml:4:1: shotz: unknown key 'shotz' (did you mean 'shots'?)"
