"""The run engine: every take of a plan driven from where the store says it is to ``done``.

One asyncio task per take walks it through its steps (:mod:`~runner.scheduler.submit`, then
:mod:`~runner.scheduler.collect`); the shared limits (in-flight AIMD, creation pace,
download slots) and the budget decide who goes when. A take per task keeps each take's story
readable top to bottom. Only a window of takes has a task at a time
(:mod:`~runner.scheduler.window`): a 20,000-take run holds a few dozen coroutines, not
20,000, and a finished take keeps nothing but its phase (and its outcome if it did not
render).

Shutdown, in two steps because a creation on the wire is the one moment a crash can cost
money: the first :meth:`Engine.request_stop` stops new submissions and cancels every take
*except* those whose creation request is on the wire, which finish and commit their task id
(the client's timeouts bound the wait); a second one cancels those too (they become
ambiguous for the next run, which is honest). The store is never left half-written: each
transition is one store call (one transaction) made without an ``await`` inside it.

Dependencies (``after``/``from_shot``): a take waits for every take of the shots it depends
on to finish *in this run* (or to be done already); a failed source fails it with kind
"dependency"; independent takes never wait for it. The rule is one function,
:func:`runner.scheduler.dependencies.dependency_state`.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from runner.core import advice
from runner.core.errors import StateError, StoreWriteFailed
from runner.core.model import Manifest, Take, frozen_mapping
from runner.core.money import unit_of
from runner.core.redact import redact
from runner.media.observed import OutputExpectations, ranked
from runner.scheduler.collect import (
    COMPLETED,
    DONE,
    RETRY,
    can_recheck,
    download,
    poll,
    recheck_rejected,
)
from runner.scheduler.crew import Crew
from runner.scheduler.dependencies import Dependencies, Wait, dependency_state
from runner.scheduler.limits import AimdLimiter, DownloadSlots, TokenBucket
from runner.scheduler.restore import check_plans, restore_cut_from, restore_kept
from runner.scheduler.run_context import (
    PHASE_EVENTS,
    TERMINAL,
    EngineSettings,
    Outcome,
    Phase,
    RunContext,
    StopReason,
)
from runner.scheduler.snapshot import (
    Cost,
    EventSink,
    NextRun,
    Observer,
    RunProgress,
    RunSummary,
    TakeFailure,
    TakeProgress,
)
from runner.scheduler.submit import submit
from runner.scheduler.teamwork import TeamWork, parked_key
from runner.scheduler.uploads import UploadCache
from runner.scheduler.window import TakeWindow, window_size
from runner.state import continuity, outputs
from runner.state.budget import budget_guard
from runner.state.continuity import frame_sources
from runner.state.decide import collectable, decide
from runner.state.protocol import Store
from runner.state.records import TakeAction, TakePlan, TakeRecord, TakeStatus
from runner.wire.payload import estimate_credits
from runner.wire.protocol import Gateway, ResolvesLostAnswers

log = structlog.get_logger()

A = TakeAction
# Actions settled before the run starts (no task, no snapshot per take).
_SETTLED = frozenset({A.SKIP, A.FAILED, A.HOLD})
# A take stopped with its creation sent and no answer (Ctrl-C twice, a lost lease): what the
# next run does with it, by whether the provider can look a lost creation up (Kling).
_ANSWER_NEVER_CAME = {
    False: "its creation was sent but its answer never came (it may be rendering, and "
           "billed): the next run counts it ambiguous and by default creates it again "
           "(spends; `--ambiguous hold` holds it instead)",
    True: "its creation was sent but its answer never came: the next run looks it up by its "
          "id and collects it if it was made (spends nothing), else creates it (spends)",
}
# Actions that make the take's output from this run's manifest (a new task, a kept render).
_MADE_FROM_THE_MANIFEST = frozenset({A.SUBMIT, A.RETRY, A.RESTORE})
# Actions of takes whose task is at the provider already (they hold adopted slots).
_AT_THE_PROVIDER = frozenset({A.POLL, A.DOWNLOAD})
# Statuses of a take a stop leaves in flight at the provider (or maybe: submitting).
_LEFT_AT_THE_PROVIDER = frozenset({TakeStatus.SUBMITTED, TakeStatus.COMPLETED,
                                   TakeStatus.DOWNLOADING, TakeStatus.SUBMITTING})


class Engine:
    """Runs ``plans`` (from :meth:`Store.sync`) for ``manifest`` through ``gateway``.

    ``upload_namespace`` is the file service's URL: uploads are remembered per service.
    """

    def __init__(self, manifest: Manifest, store: Store, gateway: Gateway,
                 plans: Sequence[TakePlan], settings: EngineSettings | None = None, *,
                 observer: Observer | None = None, upload_namespace: str = "",
                 expectations: OutputExpectations | None = None,
                 events: EventSink | None = None, crew: Crew | None = None,
                 team_wait: bool = True) -> None:
        self.manifest = manifest
        self.store = store
        self.settings = settings or EngineSettings()
        self.observer = observer
        # Plans carry each take's whole store record: the engine keeps what it needs of them
        # (the action, and the records of takes failed before) and not the plans, which
        # were half of a 20,000-take run's Python objects. The keys of ``phases`` are the
        # takes of this run.
        by_key = {take.key: take for take in manifest.takes}
        self.takes: list[Take] = [by_key[plan.key] for plan in plans]
        del by_key
        self._actions: list[TakeAction] = [plan.action for plan in plans]
        self._failed_before = {plan.key: plan.record for plan in plans
                               if plan.action is A.FAILED}
        self._previous = [(plan.key, plan.previous) for plan in plans
                          if plan.previous is not None]
        # Only the shots something depends on: one list per shot of a 20,000-shot manifest
        # would cost megabytes for nothing.
        sources = {shot_id for take in manifest.takes for shot_id in take.after}
        self._by_shot: dict[str, list[str]] = {}  # shot id -> the keys of its takes
        for take in manifest.takes:
            if take.shot_id in sources:
                self._by_shot.setdefault(take.shot_id, []).append(take.key)
        # Creations whose answer an earlier run lost: counted in this run's summary too.
        # A provider that looks lost creations up (Kling) resolves them instead.
        self._resolves_lost = isinstance(gateway, ResolvesLostAnswers)
        self._ambiguous_found: set[str] = set()
        for plan in plans:
            self._note_ambiguous(plan)
        # Events only for takes someone waits for, made when the wait starts.
        self._waiters: dict[str, asyncio.Event] = {}
        self.window = TakeWindow(
            self.settings.window or window_size(self.settings.concurrency,
                                                self.settings.downloads),
            blockers=self._admission,
            spawn=lambda index: asyncio.create_task(
                self._drive(self.takes[index], self._actions[index]),
                name=f"take:{self.takes[index].key}"),
            halted=self._halted)
        self._stops = 0
        self._fatal: StateError | None = None
        self._notifying = False
        # Progress snapshots: one per loop turn while running (see _notify); the durations
        # tuple of the last one, reused until a task completes.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._snapshot_due = False
        self._durations_version = -1
        self._durations: tuple[float, ...] = ()
        self._started_at = time.time()
        self._wall_start = time.monotonic()
        s = self.settings
        self.ctx = RunContext(
            manifest=manifest,
            store=store,
            gateway=gateway,
            settings=s,
            limiter=AimdLimiter(s.concurrency),
            bucket=TokenBucket(s.submit_rate),
            downloads=DownloadSlots(s.downloads),
            budget=budget_guard(s.max_credits, manifest, store),
            uploads=UploadCache(store, gateway, manifest.output_dir / ".shotrun" / "frames",
                                frame_source=self._frame_source,
                                namespace=upload_namespace),
            notify=self._notify,
            output_rules=expectations,
            halt=self._halt,
            events=events,
            crew=crew,
        )
        # A team's runner claims each take before working on it (runner.scheduler.teamwork).
        self.teamwork = None if crew is None or crew.team is None else TeamWork(
            crew.team, poll=crew.poll, wait=team_wait, seat_freed=crew.wake)
        for plan in plans:  # the plan's key string: one copy per take in every table
            self.ctx.phases[plan.key] = Phase.QUEUED

    # ------------------------------------------------------------------ control
    def request_stop(self) -> int:
        """Ctrl-C / SIGTERM. The first call stops gracefully, the next ones at once.

        Returns how many times a stop was requested so far.
        """
        self._stops += 1
        self.ctx.stop(StopReason.INTERRUPTED, "interrupted: tasks in flight keep rendering at "
                      f"{self.ctx.gateway.label}; {advice.COLLECT_AGAIN}")
        critical = self.ctx.critical
        self.window.cancel(lambda index: self._stops == 1 and self.takes[index].key in critical)
        return self._stops

    def _halted(self) -> bool:
        """True once the run must not start anything new at all (Ctrl-C, a refused key)."""
        return self._stops > 0 or self.ctx.stop_reason is StopReason.AUTH

    def _halt(self) -> None:
        """Stop everything now (401): the same as a first Ctrl-C, without the message."""
        critical = self.ctx.critical
        self.window.cancel(lambda index: self.takes[index].key in critical)

    # ------------------------------------------------------------------ running
    async def run(self) -> RunSummary:
        """Drive every take to the end of this run and return the summary.

        Raises :class:`~runner.core.errors.StoreWriteFailed` when the store stops accepting writes:
        the run stops at once (each take stays where its last committed transition left it).
        """
        ctx = self.ctx
        self._archive_previous()
        if isinstance(ctx.gateway, ResolvesLostAnswers):
            ctx.store.client_salt()  # chosen before any creation of this run is recorded
        for index, take in enumerate(self.takes):
            action = self._actions[index]
            if self.teamwork is not None and action not in _SETTLED:
                # Claimed (and planned again) when its turn comes: another runner may hold it.
                self.window.add(0 if action in _AT_THE_PROVIDER else 1, index)
                continue
            if action is A.FAILED and can_recheck(self._failed_before[take.key],
                                                  ctx.files.of(take).video):
                # Failed its check, its paid file kept: checked again under today's rules
                # (a size rule relaxed, a gateway profile learnt) instead of staying failed.
                del self._failed_before[take.key]
                action = self._actions[index] = A.DOWNLOAD
            if action is A.POLL:
                ctx.limiter.adopt()  # already at the gateway: counts against the limit
                self._adopt(take)
            elif action is A.DOWNLOAD:
                ctx.phases[take.key] = Phase.DOWNLOADING  # done there: to be fetched
            if action in _SETTLED:
                # Settled before this run: no task and no snapshot per take (a resumed
                # 20,000-take run would otherwise spend a second on bookkeeping alone).
                self._settle_before(take, action)
            else:
                # At the gateway already (holding adopted slots) first, then in plan order.
                self.window.add(0 if action in _AT_THE_PROVIDER else 1, index)
        self._notify()  # the first snapshot, at once
        self._loop = asyncio.get_running_loop()
        watcher = listener = None
        if self.teamwork is not None:
            watcher = asyncio.create_task(
                self.teamwork.watch(self._unpark, self._lost_lease, self._store_failed),
                name="team-heartbeat")
            listener = asyncio.create_task(self.teamwork.listen(), name="team-listen")
        self.window.admit()
        try:
            await self._until_idle(watcher)
            while (watcher is not None and not watcher.done() and self.teamwork is not None
                   and self.teamwork.waiting() and not self._halted()):
                # Nothing left to claim: wait for the takes other runners hold (the
                # heartbeat's next look sets idle again, or starts what they let go).
                self.window.idle.clear()
                await self._until_idle(watcher)
        finally:
            await TeamWork.stop(watcher)
            await TeamWork.stop(listener)
            self.window.cancel()
            self._loop = None  # from here on, snapshots go out at once
            if self._snapshot_due:
                self._flush()
        fatal = self._fatal
        if isinstance(fatal, StoreWriteFailed):
            raise fatal
        if fatal is not None:
            # A read or a refused move stopped the run: still "stopped mid-way, what was
            # recorded is kept" (exit 4), never "nothing was sent" as a store that cannot
            # be opened says (exit 2). The message is the one already logged.
            raise StoreWriteFailed(redact(str(fatal))) from fatal
        # A team's runner ending (--no-wait, a stop) with takes other runners hold: theirs
        # to finish, not this run's to report as unfinished (nor to fail its exit code).
        others = set() if self.teamwork is None else set(self.teamwork.elsewhere)
        for take in self.takes:
            if ctx.phases.get(take.key) not in TERMINAL and take.key not in others:
                self._settle_unfinished(take)
        self._notify()  # the last snapshot: the run's final state, to the take
        summary = self._summary(others)
        log.info("run_finished", done=summary.done, failed=len(summary.failed),
                 stopped=summary.stopped_reason)
        return summary

    async def _until_idle(self, heartbeat: asyncio.Task[None] | None) -> None:
        """Until the window is idle; a team's heartbeat that dies of a defect is raised
        here (its lease would run out under the run: never a silent hang or a double)."""
        if heartbeat is None or heartbeat.done():
            await self.window.idle.wait()
            return
        idle = asyncio.ensure_future(self.window.idle.wait())
        try:
            await asyncio.wait({idle, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
            if heartbeat.done() and not heartbeat.cancelled() and heartbeat.exception():
                heartbeat.result()
            await idle  # a lost lease halted the run: its takes settle, then idle
        finally:
            idle.cancel()

    def _adopt(self, take: Take) -> None:
        """A take an earlier run left at the gateway: in flight from the first snapshot.

        Its coroutine may start a few turns later (or wait behind the window); the first
        progress line of a resumed run said "0 in flight, 4 queued" with 2 at the gateway.
        No event: the run has not started yet (``run_started`` counts these takes).
        """
        record = self.ctx.store.record(take.key)
        self.ctx.gateway_progress[take.key] = TakeProgress(
            take.key, record.gateway_status or "pending", record.progress or 0,
            record.task_id, started_at=record.submitting_at or record.submitted_at,
            hint=record.estimated_time)
        self.ctx.phases[take.key] = Phase.IN_FLIGHT

    def _archive_previous(self) -> None:
        """Move the outputs of takes whose fingerprint changed to the history folder."""
        previous, self._previous = self._previous, []
        for key, record in previous:
            try:
                outputs.archive_previous(self.manifest.output_dir, record)
            except OSError as exc:
                # Not fatal: the files stay where they are, and are moved aside (or the take
                # fails with a clear message) when its new output is filed.
                log.warning("archive_failed", take=key, error=str(exc))

    async def _drive(self, take: Take, action: TakeAction) -> None:
        ctx = self.ctx
        with structlog.contextvars.bound_contextvars(shot=take.shot_id, take=take.take):
            try:
                step: TakeAction | None = action
                if self.teamwork is not None:
                    step = self._claimed(take, action)
                if step is not None:
                    await self._steps(take, step)
            except asyncio.CancelledError:
                self._settle_unfinished(take)
                raise
            except StateError as exc:
                if self.teamwork is not None and self.teamwork.taken_over(take.key):
                    # Our lease ran out and another runner holds the take: its moves, not a
                    # failing store. The heartbeat stops this runner at its next look.
                    log.warning("take_taken_over_meanwhile", error=redact(str(exc)))
                    ctx.finish(take, Phase.LEFT, message="another runner took this take over")
                else:
                    self._store_failed(exc)
            except Exception as exc:
                # A defect must not take the other takes down; the store keeps the take
                # where it was, so the next run picks it up. The traceback goes to the run
                # log only (debug level), redacted and without locals: a frame may hold the
                # key, and a console shows no tracebacks.
                what = redact(f"{type(exc).__name__}: {exc}")
                log.error("take_crashed", error=what)
                log.debug("take_crash_traceback",
                          traceback=redact("".join(traceback.format_exception(exc))))
                ctx.finish(take, Phase.FAILED, kind="internal", code="internal_error",
                           message=what)
            finally:
                if ctx.phases.get(take.key) not in TERMINAL:
                    self._settle_unfinished(take)
                if self.teamwork is not None:
                    self.teamwork.release(take.key)
                self._finished(take.key)

    def _store_failed(self, exc: StateError) -> None:
        """The store cannot record (disk full, read-only, gone): nothing may move on without
        its transition committed, so the whole run stops now and :meth:`run` raises this
        error for the command to report in one line."""
        if self._fatal is None:
            self._fatal = exc
            log.error("run_stopped_store_failed", error=redact(str(exc)))
            self._stops = max(self._stops, 1)
            self.ctx.stop(StopReason.INTERRUPTED, redact(str(exc)))
            self.window.cancel()

    # ------------------------------------------------------------------ a team's runner
    def _admission(self, index: int) -> tuple[str, ...]:
        """What the take at ``index`` waits for before it may start: for a team's runner, its
        claim first (held elsewhere: parked until released), then its dependencies."""
        take = self.takes[index]
        work = self.teamwork
        if work is not None and not work.holds(take.key) and not self._halted():
            try:
                plan = work.claim(take.key)
            except StateError as exc:
                self._store_failed(exc)
                return ()
            if plan is None:
                return (parked_key(take.key),)
            self._note_ambiguous(plan)  # a dead runner's creation, found on taking it over
            # Planned again from the store alone: look at the files as the run's start did
            # (a kept render of its fingerprint comes back free, never created anew).
            try:
                plan = check_plans(self.ctx.store, self.ctx.manifest, [take], [plan])[0]
            except StateError as exc:
                self._store_failed(exc)
                return ()
            self._actions[index] = plan.action
            if plan.action is A.FAILED:
                self._failed_before[take.key] = plan.record
        return self._blockers(take)

    def _note_ambiguous(self, plan: TakePlan) -> None:
        """A creation whose answer an earlier run (or a dead runner) lost: counted in this
        run's summary, once. A provider that looks lost creations up (Kling) resolves it."""
        if plan.reason == "ambiguous submission" and not self._resolves_lost:
            self._ambiguous_found.add(plan.key)

    def _claimed(self, take: Take, action: TakeAction) -> TakeAction | None:
        """A claimed take's first step: settled (done, failed or held meanwhile), adopted at
        the provider (its account's seat came with the claim), or ``action`` as planned."""
        ctx = self.ctx
        if action in _SETTLED:
            self._settle_before(take, action)
            return None
        if action in _MADE_FROM_THE_MANIFEST and (
                ctx.store.record(take.key).fingerprint != take.fingerprint):
            # Another runner's manifest changed the take since this run planned it: a
            # creation from this one's request would be recorded as that one's render.
            ctx.finish(take, Phase.LEFT, message=(
                "another runner's manifest changed this take (its prompt or settings) since "
                "this run started: nothing was created; update this manifest (e.g. `git "
                "pull`) and run again, or let that runner render it"))
            return None
        if action is A.POLL:
            record = ctx.store.record(take.key)
            crew = ctx.crew
            if crew is not None and not crew.can_serve(record.account):
                ctx.finish(take, Phase.LEFT, message=(
                    f"its task was created with account {record.account}, whose key this "
                    "runner does not have: a runner with that key collects it"))
                return None
            ctx.limiter.adopt()
            if crew is not None:
                crew.adopt_seat(take.key, record.account)
            self._adopt(take)
        return action

    def _unpark(self, keys: list[str]) -> None:
        """Takes other runners let go: back in line (and idle set again if none can start)."""
        for key in keys:
            self.window.finished(parked_key(key))
        self.window.admit()

    def _lost_lease(self, message: str) -> None:
        self._stops = max(self._stops, 1)
        self.ctx.stop(StopReason.INTERRUPTED, message)
        self.window.cancel()

    def _settle_before(self, take: Take, action: TakeAction) -> None:
        """A take this run has nothing to do for: done, failed or held before."""
        ctx = self.ctx
        key = take.key
        if action is A.SKIP:
            ctx.phases[key] = Phase.SKIPPED  # an outcome says nothing more: none is kept
        elif action is A.FAILED:
            record = self._failed_before.pop(key)
            # What it would cost to try again is said once, in the summary's advice.
            if collectable(record):  # paid, but its result's documented lifetime is over
                ctx.outcomes[key] = Outcome(
                    Phase.FAILED, "permanent", "link_lifetime_over",
                    f"{ctx.gateway.label} no longer serves the result of task "
                    f"{record.task_id} (its documented lifetime is over): it needs a new "
                    "creation")
            else:
                ctx.outcomes[key] = Outcome(Phase.FAILED, record.failure_kind,
                                            record.last_error_code,
                                            (record.last_error or "failed before") +
                                            " (failed before)")
            ctx.phases[key] = Phase.FAILED
        else:
            ctx.outcomes[key] = Outcome(Phase.HELD, None, "ambiguous_submission",
                                        "held: a creation's answer was lost; --retry-failed "
                                        "resubmits it (creates a new task; the lost one may "
                                        "have been billed too)")
            ctx.phases[key] = Phase.HELD
        self._finished(key)

    def _finished(self, key: str) -> None:
        """``key`` has its outcome for this run: wake what waits for it."""
        event = self._waiters.pop(key, None)
        if event is not None:
            event.set()
        self.window.finished(key)

    def _is_finished(self, key: str) -> bool:
        return self.ctx.phases.get(key) in TERMINAL

    async def _wait_finished(self, key: str) -> None:
        """Until the take ``key`` of this run has its outcome."""
        if self._is_finished(key):
            return
        event = self._waiters.get(key)
        if event is None:
            event = self._waiters[key] = asyncio.Event()
        await event.wait()

    async def _steps(self, take: Take, action: TakeAction | None) -> None:
        ctx = self.ctx
        if self._halted():
            return  # stopped before this take's turn: it stays where the store has it
        # --retry-failed on a take whose paid file failed its check: that file first; a new
        # task is paid for only when it still fails.
        if action is A.RETRY and await recheck_rejected(ctx, take, fail=False) == DONE:
            return
        if action is A.RESTORE:  # a kept render of this fingerprint: put back, no credits
            action = await restore_kept(ctx, take)  # None: put back
            if action is A.POLL:
                ctx.limiter.adopt()  # its task is at the gateway: counts against the limit
            elif action not in (A.SUBMIT, A.RETRY, A.DOWNLOAD):
                return
        if action in (A.SUBMIT, A.RETRY):
            if not await self._dependencies_ready(take):
                return
            if await restore_cut_from(ctx, take, self._chosen_sources(take)):
                return  # a kept render cut from the very frames chosen now: no credits
            if not await submit(ctx, take):
                return
            if self._halted():  # stopped while the creation was on the wire: it is saved
                return
            action = A.POLL
        while True:
            if action is A.POLL:
                result = await poll(ctx, take)
                if result == COMPLETED:
                    action = A.DOWNLOAD
                    continue
            elif action is A.DOWNLOAD:
                result = await download(ctx, take)
            else:
                return
            if result != RETRY:
                return
            # The task failed transiently or is gone: a new one, within --retries.
            if not await submit(ctx, take) or self._halted():
                return
            action = A.POLL

    async def _dependencies_ready(self, take: Take) -> bool:
        """Wait for the shots ``take`` depends on; False (and the take settled) if it can't go.

        The rule is :func:`~runner.scheduler.dependencies.dependency_state`: this waits on
        what it names and asks again, until the take may go or never will.
        """
        ctx = self.ctx
        while True:
            state = self._dependencies(take)
            if state is None:
                return True
            if isinstance(state, Wait):
                if state.any_of:  # a frame's source: the first of its takes to finish
                    await self._wait_any(state.keys)
                else:
                    await self._wait_finished(state.keys[0])
                continue
            if state.not_started:
                ctx.finish(take, Phase.NOT_STARTED, message=state.message)
            else:
                ctx.store.mark_failed(take.key, "dependency", "dependency_failed",
                                      state.message)
                ctx.finish(take, Phase.FAILED, kind="dependency", code="dependency_failed",
                           message=state.message)
            return False

    def _dependencies(self, take: Take) -> Dependencies:
        """Where ``take`` stands now with the shots it depends on (None: free to go)."""
        if not take.after:
            return None
        return dependency_state(take.after, frame_sources(take), self._by_shot,
                                phase=self.ctx.phases.get, finished=self._is_finished,
                                done_in_store=self._done_in_store,
                                pick_ready=self._pick_ready)

    async def _wait_any(self, keys: Sequence[str]) -> None:
        """Until the first of the takes ``keys`` of this run has its outcome."""
        waiting = [asyncio.ensure_future(self._wait_finished(key)) for key in keys]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waiting:
                future.cancel()

    def _pick_ready(self, shot_id: str) -> bool:
        """True when ``shot_id`` has a picked take whose output is still the picked one."""
        pick = self.ctx.store.picks().get(shot_id)
        if pick is None:
            return False
        records = self.ctx.store.shot_records(shot_id)
        chosen = continuity.choose(records, pick)
        return chosen is not None and chosen.take == pick.take

    def _blockers(self, take: Take) -> tuple[str, ...]:
        """The unfinished takes of this run ``take`` would wait for now (empty: none).

        The same rule as :meth:`_dependencies_ready`, without waiting: a take whose wait would
        end at once (its sources are done, or one failed and it fails too) is not blocked;
        one that waits for a frame waits for any of its source's takes, so it is blocked by
        them all.
        """
        state = self._dependencies(take)
        return state.keys if isinstance(state, Wait) else ()

    def _done_in_store(self, key: str) -> bool:
        try:
            return self.ctx.store.record(key).status is TakeStatus.DONE
        except StateError:  # never recorded: not rendered yet
            return False

    def _settle_unfinished(self, take: Take) -> None:
        """A take cut short by a stop: in flight at the gateway, or never submitted."""
        try:
            status: TakeStatus | None = self.store.record(take.key).status
        except StateError:  # the store itself failed: say nothing more than we know
            status = None
        phase = Phase.LEFT if status in _LEFT_AT_THE_PROVIDER else Phase.NOT_STARTED
        message = self.ctx.stop_message
        if status is TakeStatus.SUBMITTING and (
                self.teamwork is None or self.teamwork.holds(take.key)):
            # Not "collected for nothing" like a task whose id is recorded: said per take
            # (of this runner's own creations: another live runner's answer may yet come).
            message = _ANSWER_NEVER_CAME[self._resolves_lost]
        self.ctx.outcomes[take.key] = Outcome(phase, message=message)
        self.ctx.phases[take.key] = phase
        self.ctx.gateway_progress.pop(take.key, None)  # no longer followed: not a row
        self.ctx.event(PHASE_EVENTS[phase], take.key, message=message)

    def _chosen(self, shot_id: str, picks: Mapping[str, continuity.Pick]) -> TakeRecord | None:
        """The take of ``shot_id`` a continuity frame is cut from now: the valid pick (of
        ``picks``, the store's), else its first done take."""
        return continuity.choose(self.store.shot_records(shot_id), picks.get(shot_id))

    def _chosen_sources(self, take: Take) -> dict[str, str]:
        """Shot id -> SHA-256 of the output each frame of ``take`` would be cut from now;
        empty for a take without frames of other shots, or when one has no output yet."""
        shots = frame_sources(take)
        if not shots:
            return {}
        picks = self.store.picks()  # read once for all of the take's sources
        sources: dict[str, str] = {}
        for shot_id in shots:
            chosen = self._chosen(shot_id, picks)
            if chosen is None or not chosen.sha256:
                return {}
            sources[shot_id] = chosen.sha256
        return sources

    def _frame_source(self, shot_id: str) -> Path | None:
        """The output a continuity frame of ``shot_id`` is cut from (see :meth:`_chosen`)."""
        chosen = self._chosen(shot_id, self.store.picks())
        return Path(chosen.output_path) if chosen and chosen.output_path else None

    # ------------------------------------------------------------------ reporting
    def _count(self, *phases: Phase) -> int:
        return self.ctx.phases.count(*phases)

    def progress(self) -> RunProgress:
        """A frozen snapshot of the run now."""
        ctx = self.ctx
        counts = ctx.phases.counts
        durations = ctx.durations
        if self._durations_version != durations.version:
            # Up to 500 floats: copied when a task completed since the last snapshot only.
            self._durations_version = durations.version
            self._durations = tuple(durations)
        elsewhere = 0 if self.teamwork is None else len(self.teamwork.elsewhere)
        return RunProgress(
            total=len(self.takes),
            done=counts[Phase.DONE] + counts[Phase.SKIPPED],
            failed=counts[Phase.FAILED],
            in_flight=counts[Phase.IN_FLIGHT],
            queued=counts[Phase.QUEUED] - elsewhere,
            elsewhere=elsewhere,
            downloading=counts[Phase.DOWNLOADING],
            submitting=counts[Phase.SUBMITTING],
            ambiguous=ctx.ambiguous_seen + len(self._ambiguous_found),
            held=counts[Phase.HELD],
            credits_reserved=ctx.budget.total,
            max_credits=ctx.budget.max_credits,
            started_at=self._started_at,
            concurrency_limit=ctx.limiter.limit,
            takes=tuple(ctx.gateway_progress.values()),
            durations=self._durations,
            stopping=ctx.stop_message,
            expected_task=self.settings.polling.default_estimate,
            unit=ctx.budget.unit,
        )

    def _notify(self) -> None:
        """Something changed: the observer gets a snapshot at the end of this loop turn.

        A take changes phase about seven times, and many takes move in one turn of the event
        loop; a snapshot per change cost more than the changes. While :meth:`run` runs, changes
        only mark the snapshot due and one callback (``call_soon``) hands out a single one
        for all of them: the observer sees every state that lasts past a turn, a moment later,
        never a half-made one. Outside a run (no loop yet) the snapshot goes out at once.
        """
        if self.observer is None or self._snapshot_due:
            return
        loop = self._loop
        if loop is None:
            self._deliver()
            return
        self._snapshot_due = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        """The loop callback of :meth:`_notify` (a no-op once the run delivered it itself)."""
        if self._snapshot_due:
            self._snapshot_due = False
            self._deliver()

    def _deliver(self) -> None:
        # Not re-entered: an observer that stops the run causes a state change itself (with a
        # loop, that change is delivered on the next turn).
        if self.observer is None or self._notifying:
            return
        self._notifying = True
        try:
            self.observer(self.progress())
        except Exception as exc:  # a display must never break a run
            log.warning("observer_failed", error=str(exc))
        finally:
            self._notifying = False

    def _summary(self, others: set[str] | frozenset[str] = frozenset()) -> RunSummary:
        ctx = self.ctx
        keys = [take.key for take in self.takes if take.key not in others]

        def having(phase: Phase) -> tuple[str, ...]:
            return tuple(k for k in keys if ctx.phases.get(k) is phase)

        again = set(ctx.resubmitted_unknown)
        held = having(Phase.HELD)
        left = having(Phase.LEFT)
        failures = tuple(
            TakeFailure(k, ctx.outcomes[k].kind or "unknown", ctx.outcomes[k].code,
                        ctx.outcomes[k].message or "failed")
            for k in having(Phase.FAILED)
        )
        return RunSummary(
            total=len(keys),
            done=len(having(Phase.DONE)),
            skipped=len(having(Phase.SKIPPED)),
            failed=failures,
            ambiguous=ctx.ambiguous_seen + len(self._ambiguous_found),
            held=held,
            not_started=having(Phase.NOT_STARTED),
            in_flight=left,
            credits_run=ctx.budget.reserved,
            credits_total=ctx.budget.total,
            max_credits=ctx.budget.max_credits,
            unit=ctx.budget.unit,
            wall_time=time.monotonic() - self._wall_start,
            stopped_reason=ctx.stop_reason.value if ctx.stop_reason else None,
            stopped_message=ctx.stop_message,
            downloaded=ctx.downloaded,
            restored=ctx.restored,
            resubmitted_unknown=tuple(k for k in keys if k in again),  # manifest order
            size_warnings=tuple(ranked(ctx.size_warnings)),
            left_reasons=frozen_mapping({
                k: ctx.outcomes[k].message or "" for k in having(Phase.LEFT)
                if k in ctx.outcomes and ctx.outcomes[k].message
                and ctx.outcomes[k].message != ctx.stop_message
            }),
            next_run=self._next_run([f.key for f in failures], held, left),
            with_others=len(others),
        )

    def _next_run(self, failed: Sequence[str], held: Sequence[str],
                  left: Sequence[str]) -> NextRun:
        """What the next run does with the takes this one did not finish, and its cost.

        Each failed take is judged by the rule the next run will apply (:func:`decide`, on
        its record as it is now): a paid task still collectable is collected for nothing; a
        take a plain run creates anew, or one only ``--retry-failed`` creates, is priced by
        its estimate. The summary's advice is made of these, never of guesses.
        """
        ctx = self.ctx
        wanted = {*failed, *held, *left}
        requests = {take.key: take.request for take in self.takes if take.key in wanted}
        # Priced in the unit the provider bills in (Kling units, fal dollars), as plan does.
        rates = ctx.manifest.budget.rates_for(unit_of(ctx.manifest.api.provider))

        def cost(keys: Sequence[str]) -> Cost:
            _, credits, unpriced = advice.total(
                estimate_credits(requests[key], rates) for key in keys)
            return Cost(tuple(keys), credits, unpriced)

        now = ctx.clock()
        collects: list[str] = []
        creates: list[str] = []
        retry: list[str] = []
        for key in failed:
            try:
                record = ctx.store.record(key)
            except StateError:  # the store failed: no advice is better than a wrong one
                continue
            action, _ = decide(record, ambiguous=ctx.settings.ambiguous, now=now)
            if action in _AT_THE_PROVIDER:
                collects.append(key)
            elif action in (A.SUBMIT, A.RETRY):
                creates.append(key)
            elif action is A.FAILED:
                retry.append(key)
        return NextRun(collects=tuple(collects), collects_anew=cost(collects),
                       creates=cost(creates),
                       retry_creates=cost(retry), held=cost(held), resubmits=cost(left))
