"""A team on one shot list (issue 24): what the shared store costs, and what more runners buy.

1. **Store cost per take.** A team's runner does, per take, more store work than a runner
   alone: it claims the take (which plans it again from its record), takes a seat of an
   account, creates under a fenced ``mark_submitting`` (the claim checked in the intent's
   transaction), frees the seat and lets the claim go. Those calls are timed here directly on
   a :class:`PgStore` and its :class:`Team`, on a server that flushes every commit (as a
   studio's would), beside the same ``mark_submitting`` without a team on that server and on
   the embedded SQLite store (a runner alone: no claims, seats in memory).
2. **Three runners vs one at the same account cap.** Seats hold the account's concurrency
   across runners, so three runners can go no faster than one: the figure is what the team
   *loses* (seat polling, three start-ups racing for two cores). Makespan is the gateway
   work, from the first task the emulator accepted to the last one finished (its own clock),
   as in ``bench_slots``; the wall time from spawn to the last runner's exit is shown beside.
3. **Two accounts vs one**, three runners each: twice the seats, about half the makespan
   (half the rounds, rounded up).

Without PostgreSQL's binaries (``initdb``, ``pg_ctl``) the benchmark says so and skips.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from benchmarks import _emu, postgres
from benchmarks.bench_state import sample_takes
from benchmarks.table import format_table, row
from runner.emulator import RunningEmulator
from runner.emulator.settings import Account as EmulatorAccount
from runner.state import StateStore, store_path_for
from runner.state.pgstore import PgStore
from runner.state.team import Team
from runner.wire.payload import build_payload, fingerprint_resolver

CAP = 4  # seats per account
KEY_B_ENV = "SHOTRUN_BENCH_KEY_B"
KEY_B = "sk-bench-second-account-abcdefghijklmnop"
#: How often a waiting runner looks for a seat another runner freed (``--team-poll``),
#: compressed with the renders as ``_emu.POLL_FLAGS`` are: 1 s against minutes of a real
#: render is 0.05 s against T = 1 s at most (the default 1 s here: see docs/benchmarks.md).
TEAM_POLL = 0.05
ESTIMATE = 24.3  # credits of one 3 s 720p take: any figure does, it is only recorded


# ----------------------------------------------------------------- 1. store cost per take
def _timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _ms(seconds: Sequence[float]) -> float:
    """The median in milliseconds: on a shared machine a mean is mostly the neighbours'."""
    return round(1000 * statistics.median(seconds), 3)


def _one_take(store: PgStore, team: Team, key: str) -> list[float]:
    """Seconds of each store call of one take, in :func:`_team_path`'s order."""
    marks = [time.perf_counter()]
    if team.claim(key) is None:
        raise RuntimeError(f"{key} not claimed")
    marks.append(time.perf_counter())
    if team.take_seat(key, ["a"]) != "a":
        raise RuntimeError(f"no seat for {key}")
    marks.append(time.perf_counter())
    store.mark_submitting(key, {}, ESTIMATE, account="a")
    marks.append(time.perf_counter())
    team.release_seat(key)
    marks.append(time.perf_counter())
    team.release(key)
    marks.append(time.perf_counter())
    return [after - before for before, after in itertools.pairwise(marks)]


def _team_path(url: str, count: int) -> list[dict[str, Any]]:
    """Each store call a team's runner makes for one take, timed on ``count`` takes."""
    takes = sample_takes(count)
    payloads = {t.key: build_payload(t.request, fingerprint_resolver) for t in takes}
    steps: dict[str, list[float]] = {s: [] for s in
                                     ("claim", "seat", "submitting", "seat release", "release")}
    with PgStore.open_url(url) as store:
        team = Team(store, ambiguous="hold")
        join = _timed(team.join)
        sync = _timed(lambda: store.sync(takes, payloads, ambiguous="hold"))
        team.provide_seats({"a": CAP})
        for take in takes:
            for name, took in zip(steps, _one_take(store, team, take.key), strict=True):
                steps[name].append(took)
        team.leave()
    per_take = [sum(parts) for parts in zip(*steps.values(), strict=True)]
    detail = "; ".join(f"{name} {_ms(times):.2f}" for name, times in steps.items())
    return [
        row(f"team: store cost per take, PostgreSQL team (ms, median, N={count})", _ms(per_take),
            "informative", f"{detail}; join once {join * 1000:.1f} ms; sync {sync:.2f} s"),
        row("team: of which claims and seats (ms per take)",
            _ms([total - submit for total, submit in zip(per_take, steps["submitting"],
                                                         strict=True)]), "informative",
            "claim+replan, seat take/release, release: what being in a team adds"),
    ]


def _submitting_alone(store: StateStore, count: int) -> float:
    """Mean ms of ``mark_submitting`` on ``store``, no team: what a runner alone commits."""
    takes = sample_takes(count)
    payloads = {t.key: build_payload(t.request, fingerprint_resolver) for t in takes}
    store.sync(takes, payloads)
    return _ms([_timed(lambda k=t.key: store.mark_submitting(k, {}, ESTIMATE, account="a"))
                for t in takes])


def _store_costs(server: postgres.PgServer, count: int) -> list[dict[str, Any]]:
    rows = _team_path(server.database(), count)
    with PgStore.open_url(server.database()) as store:
        pg_alone = _submitting_alone(store, count)
    with tempfile.TemporaryDirectory() as tmp, \
            StateStore.open(store_path_for(Path(tmp))) as store:
        sqlite_alone = _submitting_alone(store, count)
    rows.append(row("team: mark_submitting without a team, PostgreSQL (ms)", pg_alone,
                    "informative", "the same server, no claim to check"))
    rows.append(row("team: mark_submitting alone, SQLite (ms)", sqlite_alone, "informative",
                    "a runner alone: seats in memory, no claims"))
    return rows


# ----------------------------------------------------------------- 2, 3. makespans
@dataclass(frozen=True)
class Makespan:
    """One team run: the gateway's busy span and the wall time of the runners."""

    gateway: float  # first task accepted -> last task finished, emulator clock
    wall: float  # first runner spawned -> last runner exited
    startup: float  # first runner spawned -> first task accepted
    per_account: dict[str, int]  # tasks accepted per emulator account
    rate_limited: int


def _manifest(root: Path, takes: int, accounts: int) -> Path:
    """``takes`` one-take shots and ``accounts`` accounts of :data:`CAP` seats each."""
    path = _emu.write_manifest(root, takes)
    entries = [f"    - {{name: a, api_key_env: {_emu.KEY_ENV}, concurrency: {CAP},"
               " submit_rate: 1000}\n"]
    if accounts == 2:
        entries.append(f"    - {{name: b, api_key_env: {KEY_B_ENV}, concurrency: {CAP},"
                       " submit_rate: 1000}\n")
    text = path.read_text(encoding="utf-8").replace(
        f"api:\n  api_key_env: {_emu.KEY_ENV}\n", "api:\n  accounts:\n" + "".join(entries))
    path.write_text(text, encoding="utf-8")
    return path


async def _runner(emu: RunningEmulator, manifest: Path, url: str) -> _emu.ChildRun:
    """One runner of the team, to its end; a failed run raises with its stderr."""
    result = await _emu.shotrun("run", manifest, "--base-url", emu.base_url, "--no-report",
                                "--store", url, "--team-poll", str(TEAM_POLL),
                                *_emu.POLL_FLAGS, keys={KEY_B_ENV: KEY_B})
    if result.code != 0:
        raise RuntimeError(f"shotrun run exited {result.code}: {result.stderr[-2000:]}")
    return result


async def _makespan(url: str, takes: int, task_time: float, runners: int, accounts: int,
                    root: Path) -> Makespan:
    manifest = _manifest(root, takes, accounts)
    labels = {_emu.KEY: EmulatorAccount("a", concurrency_cap=CAP)}
    if accounts == 2:
        labels[KEY_B] = EmulatorAccount("b", concurrency_cap=CAP)
    async with _emu.emulator(queue_time=0.0, processing_time=task_time, jitter=0.0,
                             accounts=labels) as emu:
        await _emu.warm_up(emu)
        before = emu.stats()
        children = await asyncio.gather(*(_runner(emu, manifest, url)
                                          for _ in range(runners)))
        stats = emu.stats()
        offset = time.time() - emu.core.now()  # emulator loop clock -> wall clock
        with psycopg.connect(url) as conn:
            ids = [str(r[0]) for r in conn.execute(
                "SELECT task_id FROM takes WHERE status = 'done'").fetchall()]
        tasks = [task for task in map(emu.core.board.get, ids) if task is not None]
    if len(tasks) != takes:
        raise RuntimeError(f"{len(tasks)} of {takes} takes done")
    first = min(t.started for t in tasks) + offset
    last = max(t.started + t.queue + t.processing for t in tasks) + offset
    spawned = min(c.spawned_at for c in children)
    ended = max(c.spawned_at + c.wall for c in children)
    per_account = {name: int(figures["accepted_tasks"])  # less the warm-up's task
                   - int(before.get("accounts", {}).get(name, {}).get("accepted_tasks", 0))
                   for name, figures in stats.get("accounts", {}).items()}
    return Makespan(last - first, ended - spawned, first - spawned, per_account,
                    int(stats["rate_limited"]) - int(before["rate_limited"]))


def _describe(span: Makespan) -> str:
    text = (f"{span.gateway:.2f} s at the gateway; wall {span.wall:.2f} s; start-up "
            f"{span.startup:.2f} s")
    if len(span.per_account) > 1:
        text += "; tasks " + ", ".join(f"{k} {v}" for k, v in sorted(span.per_account.items()))
    if span.rate_limited:
        text += f"; {span.rate_limited} x 429"
    return text


def _makespans(server: postgres.PgServer, takes: int, task_time: float
               ) -> list[dict[str, Any]]:
    spans: dict[tuple[int, int], Makespan] = {}
    for runners, accounts in ((1, 1), (3, 1), (3, 2)):
        with tempfile.TemporaryDirectory() as tmp:
            spans[runners, accounts] = asyncio.run(_makespan(
                server.database(), takes, task_time, runners, accounts, Path(tmp)))
    alone, three, two = spans[1, 1], spans[3, 1], spans[3, 2]
    ideal = -(-takes // CAP) * task_time
    # Twice the seats: half the rounds, rounded up (8 of 15 for 60 takes: 0.533).
    ideal_ratio = -(-takes // (2 * CAP)) / -(-takes // CAP)
    label = f"N={takes} cap {CAP} T={task_time:g}s"
    same_cap = three.gateway / alone.gateway
    accounts_ratio = two.gateway / three.gateway
    return [
        row(f"team: one runner, {label} (makespan/ideal)", round(alone.gateway / ideal, 3),
            "informative", f"ideal {ideal:g} s; {_describe(alone)}"),
        row(f"team: three runners vs one, {label} (makespan ratio)", round(same_cap, 3),
            "<= 1.05", f"three: {_describe(three)}", same_cap <= 1.05),
        row(f"team: two accounts vs one, three runners, {label} (ratio)",
            round(accounts_ratio, 3), f"<= {1.05 * ideal_ratio:.3g}",
            f"ideal {ideal_ratio:.3g}; two accounts: {_describe(two)}",
            accounts_ratio <= 1.05 * ideal_ratio),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Store cost per take, then the three makespans; skipped without PostgreSQL."""
    _emu.quiet_logs()
    server = postgres.start(durable=True)
    if server is None:
        return [row("team: skipped", "-", "informative",
                    "PostgreSQL's binaries (initdb, pg_ctl) are not on this machine")]
    try:
        # T in whole seconds: the emulator's estimated_time is whole seconds, as a gateway's
        # is, so a 0.3 s task says 0 and shotrun's first look comes late (the poll policy's
        # figure, not the team's: bench_polling measures it).
        count, takes, task_time = (300, 24, 1.0) if quick else (2000, 60, 1.0)
        return _store_costs(server, count) + _makespans(server, takes, task_time)
    finally:
        server.stop()


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
