"""The rules of continuity and takes as pure functions: which take is chosen, reel names."""

from __future__ import annotations

from runner.core.model import FrameRef, ImageElement, Take, TakeRequest, VideoElement
from runner.state import TakeStatus
from runner.state.continuity import Pick, choose, frame_sources
from runner.views.export.timeline import reel_names, timecode
from tests.helpers.records import record


def test_the_first_finished_take_is_chosen_not_the_lowest_number() -> None:
    takes = [record(1, at=50.0), record(2, at=10.0), record(3, TakeStatus.FAILED)]
    chosen = choose(takes, None)
    assert chosen is not None and chosen.take == 2
    assert choose([record(1, TakeStatus.FAILED)], None) is None


def test_a_pick_holds_only_while_its_output_is_the_one_picked() -> None:
    takes = [record(1), record(2)]
    kept = choose(takes, Pick("s01", 2, "sha-2", 0.0))
    assert kept is not None and kept.take == 2
    rerendered = choose(takes, Pick("s01", 2, "an-older-output", 0.0))
    assert rerendered is not None and rerendered.take == 1
    unfinished = choose([record(1), record(2, TakeStatus.SUBMITTED)], Pick("s01", 2, None, 0.0))
    assert unfinished is not None and unfinished.take == 1


def test_timecodes_are_non_drop_at_whole_rates() -> None:
    assert timecode(0, 24) == "00:00:00:00"
    assert timecode(23, 24) == "00:00:00:23"
    assert timecode(24, 24) == "00:00:01:00"
    assert timecode(3600 * 24 + 24 * 61 + 5, 24) == "01:01:01:05"
    assert timecode(3600 * 25 + 24, 25) == "01:00:00:24"


def test_reel_names_are_cmx_3600_reels_unique_and_recognisable() -> None:
    ids = ["s01-walk", "s01-walk.9x16", "s01-walk.16x9", "bl", "a_very_long_shot_name", "..x"]
    reels = reel_names(ids)
    assert reels[0] == "S01WALK"
    assert reels[1] == "S01WALK9" and reels[2] == "S01WALK1"  # cut to 8, made unique
    assert reels[3] == "BL2"  # BL means black to an EDL reader
    assert reels[4] == "AVERYLON"
    assert reels[5] == "X"
    assert len(set(reels)) == len(reels)
    assert all(len(r) <= 8 and r.isalnum() and r == r.upper() for r in reels)
    many = reel_names([f"shot-{n}" for n in range(300)] + ["shot-1"] * 20)
    assert len(set(many)) == 320 and all(len(r) <= 8 for r in many)


def test_frame_sources_are_the_shots_a_take_takes_frames_from_in_wire_order_each_once() -> None:
    request = TakeRequest(
        prompt="@Element1 meets @Element2 on @Image1", multi_prompt=None,
        start_frame=FrameRef("s03"), end_frame="https://example.invalid/end.png",
        images=(FrameRef("s01", "first"), FrameRef("s03", 1.5)),
        elements=(VideoElement("https://example.invalid/walk.mp4"),
                  ImageElement(FrameRef("s02"), references=(FrameRef("s04"), FrameRef("s01")))),
    )
    take = Take(shot_id="s05", take=1, request=request, fingerprint="f")
    assert frame_sources(take) == ("s03", "s01", "s02", "s04")
    plain = Take(shot_id="s06", take=1, fingerprint="f",
                 request=TakeRequest(prompt="no frames", multi_prompt=None))
    assert frame_sources(plain) == ()
