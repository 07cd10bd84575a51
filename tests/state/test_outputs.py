"""Output layout, sidecars, history folders (nothing overwritten or deleted), path safety."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.core.model import ApiConfig, Budget, Manifest, Take
from runner.core.redact import register_secret
from runner.state import StateStore, TakeRecord, TakeStatus, outputs, store_path_for
from runner.state.outputs import OutputPathError
from tests.helpers.state import make_take, payloads


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "renders"


@pytest.fixture
def store(out: Path) -> Iterator[StateStore]:
    with StateStore.open(store_path_for(out)) as opened:
        yield opened


def _manifest(out: Path, *takes: Take) -> Manifest:
    return Manifest(path=out.parent / "m.yaml", name="demo", output_dir=out, api=ApiConfig(),
                    budget=Budget(), takes=tuple(takes))


def _render(out: Path, store: StateStore, take: Take, content: bytes) -> Path:
    """Do what the run does for one take, by hand: record, 'download', sidecar, done."""
    (plan,) = store.sync([take], payloads([take]))
    if plan.previous is not None:
        outputs.archive_previous(out, plan.previous)
    store.mark_submitting(take.key, {"prompt": take.request.prompt}, 40.5)
    store.mark_submitted(take.key, "task-" + take.fingerprint[:6], 40.0)
    store.mark_completed(take.key, "https://cdn/v.mp4")
    video = outputs.output_path(out, take)
    part = outputs.part_path(video)
    part.write_bytes(content)
    outputs.archive_stale(out, take)  # as the run files a verified download
    os.replace(part, video)
    outputs.write_sidecar(_manifest(out, take), take, store.record(take.key), video,
                          sha256="ee" * 32, size=len(content), verified_duration=5.0)
    store.mark_done(take.key, video, len(content), "ee" * 32, 5.0)
    return video


def test_layout(out: Path) -> None:
    take = make_take("s01-arrival", 2)
    video = outputs.output_path(out, take)
    assert video == out / "s01-arrival" / "take-2.mp4"
    assert outputs.sidecar_path(video) == out / "s01-arrival" / "take-2.json"
    assert not video.parent.exists()
    assert outputs.part_path(video) == out / "s01-arrival" / "take-2.mp4.part"
    assert video.parent.is_dir()  # created for the download that comes next


def test_sidecar_tells_where_an_output_came_from(out: Path, store: StateStore) -> None:
    register_secret("sk-live-abcdef123456")
    take = make_take(prompt="the coast, key sk-live-abcdef123456")
    video = _render(out, store, take, b"video-1")
    text = outputs.sidecar_path(video).read_text()
    data = json.loads(text)
    assert text.count("\n") == len(data) + 2  # one field per line, for reading and diffing
    assert data["id"] == "s01/take-1"
    assert (data["shot"], data["take"], data["manifest"]) == ("s01", 1, "demo")
    assert data["fingerprint"] == take.fingerprint
    assert data["task_id"] == "task-" + take.fingerprint[:6]
    assert data["request"] == {"prompt": "the coast, key [REDACTED]"}
    assert data["credits"] == {"estimated": 40.5, "reserved": 40.0, "unit": "credits"}
    assert (data["sha256"], data["size"], data["verified_duration"]) == ("ee" * 32, 7, 5.0)
    assert data["output"] == "take-1.mp4"
    assert data["submitted"].endswith("Z") and data["downloaded"].endswith("Z")
    assert "sk-live-abcdef123456" not in outputs.sidecar_path(video).read_text()
    assert not list(video.parent.glob(".*.tmp"))


def test_a_changed_take_keeps_its_old_render_in_history(out: Path, store: StateStore) -> None:
    first = make_take(prompt="dawn")
    video = _render(out, store, first, b"dawn-video")
    second = make_take(prompt="dusk")
    _render(out, store, second, b"dusk-video")
    history = out / "s01" / "history" / first.fingerprint[:12]
    assert (history / "take-1.mp4").read_bytes() == b"dawn-video"
    assert json.loads((history / "take-1.json").read_text())["fingerprint"] == first.fingerprint
    assert video.read_bytes() == b"dusk-video"
    assert outputs.sidecar_fingerprint(video) == second.fingerprint
    # Back to the first prompt: the dusk render is archived too, and nothing is overwritten.
    third = make_take(prompt="dawn")
    _render(out, store, third, b"dawn-again")
    assert (out / "s01" / "history" / second.fingerprint[:12] / "take-1.mp4").read_bytes() == (
        b"dusk-video")
    assert (history / "take-1.mp4").read_bytes() == b"dawn-video"
    assert video.read_bytes() == b"dawn-again"
    fourth = make_take(prompt="dusk")
    _render(out, store, fourth, b"dusk-again")
    again = out / "s01" / "history" / f"{first.fingerprint[:12]}-2"
    assert (again / "take-1.mp4").read_bytes() == b"dawn-again"
    assert (history / "take-1.mp4").read_bytes() == b"dawn-video"


def test_archiving_is_idempotent_and_moves_a_stale_part_file(
    out: Path, store: StateStore
) -> None:
    first = make_take(prompt="dawn")
    video = _render(out, store, first, b"dawn-video")
    outputs.part_path(video).write_bytes(b"half of a re-download")
    (plan,) = store.sync([make_take(prompt="dusk")], payloads([make_take(prompt="dusk")]))
    assert plan.previous is not None
    target = outputs.archive_previous(out, plan.previous)
    assert target == out / "s01" / "history" / first.fingerprint[:12]
    # Only the unfinished download: the verified render stays in place until its
    # replacement is verified (issue 21).
    assert sorted(p.name for p in target.iterdir()) == ["take-1.mp4.part"]
    assert video.read_bytes() == b"dawn-video"
    assert not outputs.part_path(video).exists()  # a new download must not resume old bytes
    assert outputs.archive_previous(out, plan.previous) is None


def test_archive_previous_leaves_files_of_another_fingerprint(out: Path, store: StateStore) -> None:
    take = make_take(prompt="dusk")
    video = _render(out, store, take, b"dusk-video")
    record = dataclasses.replace(store.record(take.key), fingerprint="0" * 64)
    assert outputs.archive_previous(out, record) is None
    assert video.read_bytes() == b"dusk-video"


def test_archive_stale_moves_files_left_by_a_crash(out: Path, store: StateStore) -> None:
    first = make_take(prompt="dawn")
    video = _render(out, store, first, b"dawn-video")
    second = make_take(prompt="dusk")
    assert outputs.archive_stale(out, first) is None  # its own files stay
    target = outputs.archive_stale(out, second)
    assert target is not None and (target / "take-1.mp4").read_bytes() == b"dawn-video"
    assert not video.exists()
    video.write_bytes(b"no sidecar")
    target = outputs.archive_stale(out, second)
    assert target is not None and target.name == "unknown"


@pytest.mark.parametrize(
    "shot_id",
    ["..", ".", "", "a/b", "../escape", "/etc", "a\\b", " padded", "nul\x00byte"],
)
def test_names_that_would_escape_are_refused(out: Path, shot_id: str) -> None:
    take = make_take(shot_id)
    with pytest.raises(OutputPathError, match="cannot be used as a file name"):
        outputs.output_path(out, take)


def test_a_symlinked_shot_folder_cannot_lead_outside(out: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "s01").symlink_to(elsewhere)
    with pytest.raises(OutputPathError, match="outside the output directory"):
        outputs.output_path(out, make_take("s01"))


def test_a_symlinked_video_cannot_lead_outside(out: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.mp4"
    elsewhere.write_bytes(b"x")
    (out / "s01").mkdir(parents=True)
    (out / "s01" / "take-1.mp4").symlink_to(elsewhere)
    with pytest.raises(OutputPathError, match="outside the output directory"):
        outputs.output_path(out, make_take("s01"))


def test_dot_dot_through_a_symlink_is_judged_by_where_it_resolves(
    out: Path, tmp_path: Path
) -> None:
    deep = tmp_path / "far" / "away"
    deep.mkdir(parents=True)
    out.mkdir()
    (out / "link").symlink_to(deep)
    # Lexically out/x.mp4; really tmp/far/x.mp4.
    with pytest.raises(OutputPathError, match="outside the output directory"):
        outputs.inside(out, out / "link" / ".." / "x.mp4")
    with pytest.raises(OutputPathError, match="outside the output directory"):
        outputs.inside(out, out / ".." / "x.mp4")


def test_paths_inside_are_accepted_with_or_without_symlinks(out: Path) -> None:
    (out / "real").mkdir(parents=True)
    (out / "alias").symlink_to(out / "real")
    assert outputs.inside(out, out / "alias" / "take-1.mp4") == out / "alias" / "take-1.mp4"
    assert outputs.inside(out, out / "not-yet" / "take-1.mp4") == out / "not-yet" / "take-1.mp4"
    assert outputs.inside(out, out) == out
    root_link = out.parent / "out-link"
    root_link.symlink_to(out)
    assert outputs.inside(root_link, root_link / "s01" / "take-1.mp4")


def test_bad_take_numbers_are_refused(out: Path) -> None:
    take = dataclasses.replace(make_take(), take=0)
    with pytest.raises(OutputPathError, match="not positive"):
        outputs.output_path(out, take)


def test_sidecars_outside_the_output_dir_are_refused(out: Path, tmp_path: Path) -> None:
    take = make_take()
    record = _record_of(take, out)
    with pytest.raises(OutputPathError):
        outputs.write_sidecar(_manifest(out, take), take, record, tmp_path / "x" / "take-1.mp4")


def test_unreadable_sidecars_are_ignored(out: Path) -> None:
    video = out / "s01" / "take-1.mp4"
    video.parent.mkdir(parents=True)
    outputs.sidecar_path(video).write_text("{not json")
    assert outputs.read_sidecar(video) is None
    assert outputs.sidecar_fingerprint(video) is None


def _record_of(take: Take, out: Path) -> TakeRecord:
    with StateStore.open(store_path_for(out / "other")) as store:
        store.sync([take], payloads([take]))
        return store.record(take.key)


def test_takes_of_one_shot_share_their_history_folder(out: Path, store: StateStore) -> None:
    first = [make_take(take=1, prompt="dawn"), make_take(take=2, prompt="dawn")]
    for take in first:
        _render(out, store, take, f"dawn-{take.take}".encode())
    for take in (make_take(take=1, prompt="dusk"), make_take(take=2, prompt="dusk")):
        _render(out, store, take, b"dusk")
    history = out / "s01" / "history"
    assert [p.name for p in history.iterdir()] == [first[0].fingerprint[:12]]
    folder = history / first[0].fingerprint[:12]
    assert (folder / "take-1.mp4").read_bytes() == b"dawn-1"
    assert (folder / "take-2.mp4").read_bytes() == b"dawn-2"


def test_a_runs_take_files_are_checked_built_once_and_create_nothing(
    out: Path, tmp_path: Path
) -> None:
    files = outputs.RunFiles(out)
    take = make_take("s01", 2)
    paths = files.of(take)
    assert (paths.video, paths.part, paths.sidecar, paths.folder) == (
        out / "s01" / "take-2.mp4", out / "s01" / "take-2.mp4.part",
        out / "s01" / "take-2.json", out / "s01")
    assert paths == outputs.take_files(out, take)
    assert files.of(take) is paths  # the second ask is a lookup
    assert not out.exists()
    files.make_folder(paths)
    assert paths.folder.is_dir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "s02").symlink_to(elsewhere)
    with pytest.raises(OutputPathError, match="outside the output directory"):
        files.of(make_take("s02"))
    with pytest.raises(OutputPathError, match="cannot be used as a file name"):
        files.of(make_take("../s03"))


def test_a_shot_folder_that_cannot_be_made_is_tried_again(out: Path) -> None:
    files = outputs.RunFiles(out)
    paths = files.of(make_take("s01"))
    out.mkdir()
    (out / "s01").write_text("in the way")
    with pytest.raises(OSError):
        files.make_folder(paths)
    (out / "s01").unlink()
    files.make_folder(paths)
    assert paths.folder.is_dir()


def test_archive_stale_with_a_runs_files(out: Path, store: StateStore) -> None:
    first = make_take(prompt="dawn")
    files = outputs.RunFiles(out)
    assert outputs.archive_stale(out, first, files.of(first)) is None  # nothing there yet
    assert not (out / "s01").exists()
    video = _render(out, store, first, b"dawn-video")
    second = make_take(prompt="dusk")
    assert outputs.archive_stale(out, first, files.of(first)) is None
    video.unlink()  # a sidecar alone, of another fingerprint, still moves aside
    target = outputs.archive_stale(out, second, files.of(second))
    assert target is not None and sorted(p.name for p in target.iterdir()) == ["take-1.json"]
    assert not outputs.sidecar_path(video).exists()


def test_sidecar_lines_are_what_json_dumps_writes_per_field() -> None:
    data = {"text": "caf\u00e9 \"q\" \\ \n\t\x01 \u2603", "int": 7, "neg": -3, "float": 24.3,
            "whole": 3.0, "nan": float("nan"), "inf": float("-inf"), "zero": -0.0,
            "tiny": 1e-7, "huge": 1e300, "yes": True, "no": False, "none": None,
            "list": ["a", 1, None], "empty": [], "nested": {"k": [1.5, {"x": "y"}]},
            "enum": TakeStatus.DONE, "big": 2**70}
    text = outputs._readable_json(data)
    expected = "{\n" + ",\n".join(
        f"  {json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
        for key, value in data.items()) + "\n}\n"
    assert text == expected
    assert outputs._readable_json({}) == "{}\n"


def test_a_runs_sidecar_matches_the_public_writer(out: Path, store: StateStore) -> None:
    register_secret("sk-live-abcdef123456")
    take = make_take(prompt="the coast, key sk-live-abcdef123456")
    video = _render(out, store, take, b"video-1")
    public = json.loads(outputs.sidecar_path(video).read_text())
    files = outputs.RunFiles(out).of(take)
    written = outputs.write_take_sidecar(files, _manifest(out, take), take,
                                         store.record(take.key), sha256="ee" * 32, size=7,
                                         verified_duration=5.0)
    assert written == outputs.sidecar_path(video)
    text = written.read_text()
    ours = json.loads(text)
    assert text.count("\n") == len(ours) + 2
    assert "sk-live-abcdef123456" not in text
    public.pop("downloaded"), ours.pop("downloaded")
    assert ours == public
    assert not list(video.parent.glob(".*.tmp"))


def test_dot_dot_anywhere_in_the_path_is_resolved_before_it_is_trusted(
    out: Path, tmp_path: Path
) -> None:
    (out / "a").mkdir(parents=True)
    back_in = out / "a" / ".." / "a" / "x.mp4"
    assert outputs.inside(out, back_in) == back_in
    with pytest.raises(OutputPathError, match="outside the output directory"):
        outputs.inside(out, Path(f"{out}/a/../../x.mp4"))
