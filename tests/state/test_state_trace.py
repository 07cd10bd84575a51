"""Reading for ``status`` of thousands of takes: trace records from one narrow read, the
fast ISO time, the store's stamp, and the collector pause."""

from __future__ import annotations

import datetime as dt
import gc
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.core.bulk import paused_gc
from runner.state import StateStore, store_path_for
from runner.state.continuity import chosen_takes, picks, set_pick
from runner.state.outputs import iso_time
from runner.state.trace import read_traces, trace_record
from tests.helpers.state import make_take, payloads


def reference_iso_time(epoch: float) -> str:
    """What the fast formatter must equal: datetime's own text."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_iso_time_is_the_outputs_one_to_the_character(epoch: float) -> None:
    assert iso_time(epoch) == reference_iso_time(epoch)


@pytest.mark.parametrize("epoch", [0.0, 59.9999995, 59.9999994, 86399.9999996,
                                   1795000000.0, 1795000059.999999, 1795000059.9999999])
def test_iso_time_rounds_like_datetime_at_the_edges(epoch: float) -> None:
    assert iso_time(epoch) == reference_iso_time(epoch)
    assert iso_time(None) is None


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    clock = itertools.count(1795000000.25, 7.5).__next__
    opened = StateStore.open(store_path_for(tmp_path / "renders"), clock=clock)
    takes = [make_take("s02", 1, tags=["b"]), make_take("s01", 2, tags=["a", "x"]),
             make_take("s01", 1), make_take("s01", 10), make_take("s03", 1)]
    opened.sync(takes, payloads(takes))
    done = tmp_path / "renders" / "s01" / "take-2.mp4"
    for key in ("s01/take-2", "s01/take-1", "s02/take-1"):
        opened.mark_submitting(key, {"prompt": "x"}, 8.1)
        opened.mark_submitted(key, f"task-{key}", 9.5)
    opened.mark_done("s01/take-2", done, 1234, "ab" * 32, 5.0)
    opened.mark_done("s01/take-1", tmp_path / "elsewhere.mp4", 99, "cd" * 32, 5.0)
    opened.mark_failed("s02/take-1", "permanent", "bad_prompt", "the prompt is refused")
    set_pick(opened, "s01", 1, "cd" * 32)
    return opened


def test_read_traces_equals_trace_record_of_every_record(store: StateStore,
                                                         tmp_path: Path) -> None:
    output_dir = tmp_path / "renders"
    traces, finished = read_traces(store, output_dir)
    records = store.records()
    assert traces == [trace_record(record, output_dir) for record in records]
    assert [t["id"] for t in traces] == ["s01/take-1", "s01/take-2", "s01/take-10",
                                         "s02/take-1", "s03/take-1"]
    assert traces[1]["output"] == "s01/take-2.mp4"  # relative to the output folder
    assert traces[0]["output"] == str(tmp_path / "elsewhere.mp4")
    assert traces[3]["error"] == "the prompt is refused" and traces[3]["tags"] == ["b"]
    # Choosing gives the same answer from the light rows as from full records.
    fingerprints = {r.key: r.fingerprint for r in records}
    assert (chosen_takes(finished, picks(store), fingerprints)
            == chosen_takes(records, picks(store), fingerprints) == {"s01": (1, True)})


def test_the_stamp_changes_with_every_transition_and_pick(store: StateStore) -> None:
    seen = {store.stamp()}
    store.mark_submitting("s03/take-1", {"prompt": "x"}, 8.1)
    seen.add(store.stamp())
    store.mark_progress("s03/take-1", "processing", 40)  # cosmetic, still a change
    seen.add(store.stamp())
    set_pick(store, "s01", 2, "ab" * 32)
    seen.add(store.stamp())
    assert len(seen) == 4
    assert store.stamp() == store.stamp()  # and nothing else moves it


def test_paused_gc_restores_the_collector_as_it_was() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_only_a_shotrun_process_freezes_what_it_built_in_bulk() -> None:
    import subprocess
    import sys

    code = ("import gc, sys\nfrom runner.core import bulk\nif sys.argv[1] == 'cli':\n"
            "    bulk.mark_command_process()\nwith bulk.paused_gc():\n"
            "    kept = [[n] for n in range(1000)]\nprint(gc.get_freeze_count() >= 1000)")
    for mode, frozen in (("cli", "True"), ("library", "False")):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                              text=True, check=True)
        assert done.stdout.strip() == frozen


def test_shot_records_are_that_shots_records_by_take(store: StateStore) -> None:
    assert [r.key for r in store.shot_records("s01")] == ["s01/take-1", "s01/take-2",
                                                           "s01/take-10"]
    assert store.shot_records("s01") == [r for r in store.records() if r.shot_id == "s01"]
    assert store.shot_records("nope") == []


def test_fingerprint_payloads_are_built_on_demand_and_equal_the_eager_ones(
        tmp_path: Path) -> None:
    from runner.wire.payload import FingerprintPayloads


    takes = [make_take("s01", 1), make_take("s01", 2, prompt="other"), make_take("s02", 1)]
    lazy = FingerprintPayloads(takes, {"images": "refs"})
    assert len(lazy) == 3 and list(lazy) == [t.key for t in takes]
    assert lazy._built == {}
    assert dict(lazy) == {t.key: payloads([t])[t.key] for t in takes}
    with pytest.raises(KeyError):
        lazy["s09/take-1"]
    # sync reads only what it needs: none for takes it already knows unchanged.
    with StateStore.open(store_path_for(tmp_path / "renders")) as opened:
        first = opened.sync(takes, FingerprintPayloads(takes))
        again = FingerprintPayloads(takes)
        second = opened.sync(takes, again)
        assert again._built == {}
        assert [p.action for p in first] == [p.action for p in second] == ["submit"] * 3
        assert [r.payload for r in opened.records()] == [None] * 3  # nothing attempted yet
