"""Output paths in trace records are relative to the output folder, by the fast path or not."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from runner.state.trace import _relative

NAME = st.text(st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="-_."),
               min_size=1, max_size=12).filter(lambda n: n not in (".", ".."))


@given(st.lists(NAME, min_size=1, max_size=3), st.lists(NAME, min_size=1, max_size=3))
def test_relative_matches_pathlib(base: list[str], rest: list[str]) -> None:
    output_dir = Path("/tmp", *base)
    path = str(output_dir.joinpath(*rest))
    assert _relative(path, output_dir) == Path(path).relative_to(output_dir).as_posix()


def test_paths_outside_the_output_folder_stay_as_they_are() -> None:
    assert _relative("/elsewhere/take-1.mp4", Path("/tmp/out")) == "/elsewhere/take-1.mp4"
    assert _relative("/tmp/outer/take-1.mp4", Path("/tmp/out")) == "/tmp/outer/take-1.mp4"
    assert _relative(None, Path("/tmp/out")) is None
