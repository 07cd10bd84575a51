"""The run's phase counts are kept as phases change, so progress snapshots cost O(1) per take."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runner.scheduler.run_context import Phase, PhaseBook


@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(list(Phase))), max_size=200))
def test_counts_match_the_phases_after_any_sequence_of_moves(
        moves: list[tuple[int, Phase]]) -> None:
    book = PhaseBook()
    for take, phase in moves:
        book[f"s{take}/take-1"] = phase
    for phase in Phase:
        assert book.count(phase) == sum(1 for p in book.values() if p is phase)
    assert book.count(Phase.DONE, Phase.SKIPPED) == book.count(Phase.DONE) + book.count(
        Phase.SKIPPED)
