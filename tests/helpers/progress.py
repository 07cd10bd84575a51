"""A progress snapshot builder for display tests.

Moved from ``tests.cli.test_progress`` so that no test module imports another."""

from __future__ import annotations

from runner.scheduler.snapshot import RunProgress, TakeProgress


def snapshot(done: int = 1, pct: int = 30, *, durations: tuple[float, ...] = (100.0,),
             **over: object) -> RunProgress:
    fields: dict[str, object] = dict(
        total=4, done=done, failed=0, in_flight=2, queued=4 - done - 2, downloading=0,
        submitting=0, ambiguous=0, held=0, credits_reserved=81.0 * (done + 2),
        max_credits=500.0, started_at=1000.0, concurrency_limit=2,
        takes=(TakeProgress("s01/take-1", "processing", pct, "task-a"),
               TakeProgress("s02/take-1", "pending", 0, "task-b")),
        durations=durations,
    )
    fields.update(over)
    return RunProgress(**fields)  # type: ignore[arg-type]
