"""A state record builder for continuity and export tests.

Moved from ``tests.scenarios.continuity.test_rules`` so that no test module imports another."""

from __future__ import annotations

from runner.state import TakeRecord, TakeStatus


def record(take: int, status: TakeStatus = TakeStatus.DONE, *, at: float | None = None,
           sha: str | None = None) -> TakeRecord:
    done = status is TakeStatus.DONE
    return TakeRecord(
        key=f"s01/take-{take}", shot_id="s01", take=take, status=status, failure_kind=None,
        task_id=f"task-{take}", attempts=1, fingerprint="f", credits_estimated=None,
        credits_reserved=None, output_path=f"/out/s01/take-{take}.mp4" if done else None,
        size=None, sha256=sha or f"sha-{take}", last_error_code=None, last_error=None,
        polls=0, submitted_at=None, completed_at=None,
        downloaded_at=at if at is not None else (100.0 + take if done else None),
        link_expires_at=None, result_url=None, gateway_status=None, progress=None, tags=(),
        updated_at=0.0)
