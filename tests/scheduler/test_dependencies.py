"""The one rule for dependencies between shots, as a table (runner.scheduler.dependencies).

The engine's waiting (``_dependencies_ready``) and its window's blockers (``_blockers``) both
ask this function; the end-to-end behaviour is covered by tests/scheduler/test_engine.py and
tests/scenarios/continuity. Here every branch of the rule is one row.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from runner.scheduler.dependencies import Dependencies, Refusal, Wait, dependency_state
from runner.scheduler.run_context import Phase

D, S, F, Q, L, N = (Phase.DONE, Phase.SKIPPED, Phase.FAILED, Phase.QUEUED, Phase.LEFT,
                    Phase.NOT_STARTED)
TERMINAL = {D, S, F, L, N, Phase.HELD}
SOURCES = {"a": ["a/take-1", "a/take-2"], "b": ["b/take-1"]}


def _state(after: tuple[str, ...], *, frames: tuple[str, ...] = (),
           phases: Mapping[str, Phase] | None = None, stored: frozenset[str] = frozenset(),
           picked: frozenset[str] = frozenset()) -> Dependencies:
    phases = phases or {}
    return dependency_state(
        after, frames, SOURCES, phase=phases.get,
        finished=lambda key: phases.get(key) in TERMINAL,
        done_in_store=lambda key: key in stored, pick_ready=lambda shot: shot in picked)


@pytest.mark.parametrize(("after", "frames", "phases", "stored", "picked", "expected"), [
    # Nothing to wait for.
    ((), (), {}, (), (), None),
    # ``after``: every take of the shot, in this run (done or skipped) or done in the store.
    (("a",), (), {"a/take-1": D, "a/take-2": S}, (), (), None),
    (("a",), (), {}, ("a/take-1", "a/take-2"), (), None),
    (("a",), (), {"a/take-1": D, "a/take-2": Q}, (), (), Wait(("a/take-2",))),
    (("a",), (), {"a/take-1": Q, "a/take-2": Q}, (), (), Wait(("a/take-1",))),
    (("a",), (), {"a/take-1": F, "a/take-2": Q}, (), (),
     Refusal("waits for shot a, whose a/take-1 did not render")),
    (("a",), (), {"a/take-1": L}, (), (),
     Refusal("waits for a/take-1, which did not finish", not_started=True)),
    (("a",), (), {}, ("a/take-1",), (),
     Refusal("waits for shot a, which is not done and not in this run")),
    # Shots in order: the first that is not ready decides.
    (("b", "a"), (), {"b/take-1": Q, "a/take-1": F}, (), (), Wait(("b/take-1",))),
    # A frame's source: a valid pick, or any take done, is enough.
    (("a",), ("a",), {"a/take-1": Q, "a/take-2": Q}, (), ("a",), None),
    (("a",), ("a",), {"a/take-1": F, "a/take-2": D}, ("a/take-2",), (), None),
    (("a",), ("a",), {"a/take-1": Q}, ("a/take-2",), (), None),
    (("a",), ("a",), {"a/take-1": Q, "a/take-2": F}, (), (),
     Wait(("a/take-1",), any_of=True)),
    (("a",), ("a",), {"a/take-1": Q, "a/take-2": Q}, (), (),
     Wait(("a/take-1", "a/take-2"), any_of=True)),
    (("a",), ("a",), {"a/take-1": F, "a/take-2": N}, (), (),
     Refusal("waits for shot a, which did not finish", not_started=True)),
    (("a",), ("a",), {"a/take-1": F, "a/take-2": F}, (), (),
     Refusal("its frame comes from shot a, which has no rendered take "
             "(it failed or was not run)")),
    # A shot with no takes in the manifest waits for nothing.
    (("z",), (), {}, (), (), None),
])
def test_the_dependency_rule(after: tuple[str, ...], frames: tuple[str, ...],
                             phases: dict[str, Phase], stored: tuple[str, ...],
                             picked: tuple[str, ...], expected: Dependencies) -> None:
    assert _state(after, frames=frames, phases=phases, stored=frozenset(stored),
                  picked=frozenset(picked)) == expected
