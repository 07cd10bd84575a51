"""The one rule for dependencies between shots: may a take go now, wait, or never go?

A take lists the shots it waits for (``after``, and every ``from_shot`` of its frames). The
engine asks this rule twice: before a take is admitted to the window (whom would it wait for
now? :meth:`Engine._blockers`) and when the take waits (:meth:`Engine._dependencies_ready`,
which waits on what the rule names and asks again). One function answers both, so the two
can never disagree about a take.

The rule, per shot the take depends on, in the manifest's order:

* a shot it cuts a **frame** from is ready when it has a valid pick, or when any of its takes
  not still running here is done in the store (the take that finishes first is the one
  chosen: :func:`runner.state.continuity.choose`); otherwise the take waits for *any* of
  the source's takes still running in this run; with none left, it never goes;
* any other shot is ready when **every** one of its takes is done: in this run (done or
  skipped), or in the store for a take this run does not cover; the take waits for the
  first one still running; a source that did not render fails it (kind "dependency"), one
  stopped before finishing leaves it not started.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from runner.scheduler.run_context import Phase

# Phases of a source that ended without an outcome: a stop cut it short.
_CUT_SHORT = (Phase.NOT_STARTED, Phase.LEFT)
_RENDERED = (Phase.DONE, Phase.SKIPPED)


@dataclass(frozen=True, slots=True)
class Wait:
    """The take waits for takes of this run still running: all of ``keys`` in turn, or
    (``any_of``, a frame's source) the first of them to finish."""

    keys: tuple[str, ...]
    any_of: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """The take never goes in this run: ``not_started`` when a source was cut short by a
    stop (the take is not started either), else it fails as a dependency with ``message``."""

    message: str
    not_started: bool = False


Dependencies = Wait | Refusal | None  # None: every shot it depends on is ready


def dependency_state(
    after: Sequence[str],
    frames: Collection[str],
    sources: Mapping[str, Sequence[str]],
    *,
    phase: Callable[[str], Phase | None],
    finished: Callable[[str], bool],
    done_in_store: Callable[[str], bool],
    pick_ready: Callable[[str], bool],
) -> Dependencies:
    """Where a take depending on the shots ``after`` stands now (see the module docstring).

    ``frames``: the shots of ``after`` it cuts a frame from; ``sources``: shot id -> the keys
    of its takes. ``phase`` is a take's phase in this run (None: not in this run),
    ``finished`` whether it has its outcome, ``done_in_store`` whether the store has it done,
    ``pick_ready`` whether a shot has a valid pick.
    """
    for shot_id in after:
        keys = sources.get(shot_id, ())
        if shot_id in frames:
            state = _frame_source(shot_id, keys, phase, finished, done_in_store, pick_ready)
        else:
            state = _every_take(shot_id, keys, phase, finished, done_in_store)
        if state is not None:
            return state
    return None


def _frame_source(
    shot_id: str, keys: Sequence[str], phase: Callable[[str], Phase | None],
    finished: Callable[[str], bool], done_in_store: Callable[[str], bool],
    pick_ready: Callable[[str], bool],
) -> Dependencies:
    """A shot a frame is cut from: one done take (or a valid pick) is enough."""
    if pick_ready(shot_id) or any(done_in_store(key) for key in keys
                                  if phase(key) is None or finished(key)):
        return None
    running = tuple(key for key in keys if phase(key) is not None and not finished(key))
    if running:
        return Wait(running, any_of=True)
    if any(phase(key) in _CUT_SHORT for key in keys):
        return Refusal(f"waits for shot {shot_id}, which did not finish", not_started=True)
    return Refusal(f"its frame comes from shot {shot_id}, which has no rendered take "
                   f"(it failed or was not run)")


def _every_take(
    shot_id: str, keys: Sequence[str], phase: Callable[[str], Phase | None],
    finished: Callable[[str], bool], done_in_store: Callable[[str], bool],
) -> Dependencies:
    """A shot waited for as a whole (``after``): every one of its takes done."""
    for key in keys:
        in_run = phase(key) is not None
        if in_run:
            if not finished(key):
                return Wait((key,))
            ok = phase(key) in _RENDERED
        else:
            ok = done_in_store(key)
        if ok:
            continue
        if phase(key) in _CUT_SHORT:
            return Refusal(f"waits for {key}, which did not finish", not_started=True)
        return Refusal(f"waits for shot {shot_id}, whose {key} did not render" if in_run else
                       f"waits for shot {shot_id}, which is not done and not in this run")
    return None
