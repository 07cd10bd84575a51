"""A take changed while its paid task is in flight is reported, never abandoned silently.

The store restarts the take for its new fingerprint and keeps the old record (task id
included) in ``take_history``; the old render is not collected. That must be said: a warning
on the console and a ``paid_task_abandoned`` event that ``status``/the trace can show.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from runner.emulator import run_emulator
from tests.helpers.run import store_rows, wait_for
from tests.helpers.torture import audit, emulator, env, manifest, run_args, run_cli, store_path


async def test_a_prompt_changed_while_its_task_renders_warns_that_the_paid_task_is_abandoned(
        tmp_path: Path) -> None:
    path = manifest(tmp_path, 1)
    async with run_emulator(emulator(processing_time=0.5, seed=41)) as emu:
        args = run_args(path, emu.base_url)
        proc = await asyncio.create_subprocess_exec(
            *args, env=env(), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        in_flight = await wait_for(
            lambda: ("s000/take-1", "submitted") in store_rows(store_path(tmp_path)), proc)
        assert in_flight
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        path.write_text(path.read_text().replace("torture shot s 0", "a changed prompt"))
        code, out, err = await run_cli(args)
    assert code == 0, out + err
    assert "s000/take-1 changed while its task (task-" in err
    assert "paid render is abandoned" in err
    audit(tmp_path, 1)
    with sqlite3.connect(store_path(tmp_path)) as conn:
        events = conn.execute(
            "SELECT details FROM events WHERE event = 'paid_task_abandoned'").fetchall()
    conn.close()
    assert len(events) == 1 and "task-" in events[0][0]
