"""The journal of creations in flight (``.shotrun/intents.jsonl``): what a rebuilt store reads.

Real files in a temporary folder; the CLI-level scenarios are in
``tests/cli/commands/test_store_loss.py``.
"""

from __future__ import annotations

from pathlib import Path

from runner.state.intents import Intent, IntentLog, journal_path, read_intents, settle


def _intent(n: int, attempt: int = 1, fingerprint: str = "f" * 64, **more: object) -> Intent:
    return Intent(key=f"s{n}/take-1", shot_id=f"s{n}", take=1, fingerprint=fingerprint,
                  attempt=attempt, estimate=24.3, at=1.0, **more)  # type: ignore[arg-type]


def test_the_journal_folds_to_the_last_attempt_with_its_task_id(tmp_path: Path) -> None:
    log = IntentLog(tmp_path)
    log.record(_intent(1))
    log.task_arrived("s1/take-1", "task-1", 24.3)
    log.record(_intent(2, external_task_id="shotrun-abc", salt=""))
    log.record(_intent(3))
    log.forget("s3/take-1")  # refused or never sent: settled
    log.record(_intent(1, attempt=2))  # sent again: the task id of attempt 1 is not its own
    found = {intent.key: intent for intent in read_intents(tmp_path)}
    assert set(found) == {"s1/take-1", "s2/take-1"}
    assert found["s1/take-1"].attempt == 2 and found["s1/take-1"].task_id is None
    assert found["s2/take-1"].external_task_id == "shotrun-abc"
    assert found["s2/take-1"].salt == ""  # a store from before salts: kept as it was
    assert journal_path(tmp_path).stat().st_mode & 0o777 == 0o600


def test_a_line_cut_short_is_skipped_and_does_not_swallow_the_next(tmp_path: Path) -> None:
    log = IntentLog(tmp_path)
    log.record(_intent(1))
    with journal_path(tmp_path).open("ab") as journal:
        journal.write(b'{"key":"s1/take-1","attempt":1,"task_')  # a power cut mid-line
    later = IntentLog(tmp_path)  # the next run
    later.record(_intent(2))
    found = {intent.key: intent for intent in read_intents(tmp_path)}
    assert set(found) == {"s1/take-1", "s2/take-1"}
    assert found["s1/take-1"].task_id is None  # counted ambiguous, never new


def test_settling_keeps_only_what_the_store_has_in_flight(tmp_path: Path) -> None:
    log = IntentLog(tmp_path)
    for n in range(1, 5):
        log.record(_intent(n))
    statuses = {"s1/take-1": ("done", "f" * 64), "s2/take-1": ("submitted", "f" * 64),
                "s3/take-1": ("ambiguous", "0" * 64)}  # s3 rendered anew; s4 unknown: kept
    assert settle(tmp_path, lambda: statuses) == 2
    assert {intent.key for intent in read_intents(tmp_path)} == {"s2/take-1", "s4/take-1"}
    statuses = {f"s{n}/take-1": ("done", "f" * 64) for n in range(1, 5)}
    assert settle(tmp_path, lambda: statuses) == 0
    assert not journal_path(tmp_path).exists()


def test_no_journal_costs_no_look_at_the_store(tmp_path: Path) -> None:
    def never() -> dict[str, tuple[str, str]]:
        raise AssertionError("the store was asked although there is no journal")

    assert settle(tmp_path, never) == 0 and read_intents(tmp_path) == []
