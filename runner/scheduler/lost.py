"""Creations whose answer was lost, at a provider that lets the client name its tasks.

The gateway and fal.ai have no idempotency key: a creation sent whose answer never came is
*ambiguous* (it may be rendering, and billed). The Kling API lets the client choose each
task's ``external_task_id`` and look a task up by it, so there the question has an answer:
look it up. Found, the task is adopted (no second creation); not found, the creation never
arrived and sending it again is safe.

The id is derived from durable state, so a run killed at any instant finds it again:
``shotrun-`` + the first 40 hex digits of SHA-256 of the store's salt (random, committed once
before its first creation: :meth:`~runner.state.StateStore.client_salt`), the take's
fingerprint, key and the attempt number committed with the intent
(:meth:`~runner.state.StateStore.mark_submitting` returns it). Kling keeps the ids per
account: the salt keeps two projects, or an output folder wiped and rendered again, from
choosing the same id for the same take and adopting each other's tasks. A creation found missing is
rolled back without counting its attempt, so the next one carries the *same* id: if the
lost one arrives after all, the provider refuses the duplicate and the client adopts the
original (:class:`runner.wire.kling.KlingClient`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

import structlog

from runner.core.errors import GatewayError
from runner.core.model import Take
from runner.scheduler.policy import Reaction, Stage, classify
from runner.scheduler.run_context import RunContext
from runner.wire.common import CLIENT_TASK_ID
from runner.wire.protocol import ResolvesLostAnswers, TaskState

log = structlog.get_logger()

UNRESOLVED = "unresolved"  # the look-up itself kept failing: the creation stays ambiguous


def client_task_id(take: Take, attempt: int, salt: str = "") -> str:
    """The id a take's ``attempt``-th creation carries (at most 49 characters).

    ``salt`` is the store's own (:meth:`~runner.state.StateStore.client_salt`): ids are kept
    per account at the provider, so without it two projects rendering the same take would
    choose one id. The empty salt is the id of stores from before salts.
    """
    seed = f"{take.fingerprint}:{take.key}:{attempt}"
    digest = hashlib.sha256((f"{salt}:{seed}" if salt else seed).encode()).hexdigest()
    return f"shotrun-{digest[:40]}"


def resolver(ctx: RunContext) -> ResolvesLostAnswers | None:
    """The gateway, when it can look a lost creation up; None otherwise."""
    gateway = ctx.gateway
    return gateway if isinstance(gateway, ResolvesLostAnswers) else None


def identified(ctx: RunContext, take: Take, payload: Mapping[str, Any], attempt: int
               ) -> Mapping[str, Any]:
    """``payload`` as sent: with the attempt's client-chosen id where the provider has them."""
    if resolver(ctx) is None:
        return payload
    return {**payload, CLIENT_TASK_ID: client_task_id(take, attempt, ctx.store.client_salt())}


async def look_up(ctx: RunContext, take: Take, payload: Mapping[str, Any]
                  ) -> TaskState | str | None:
    """The task the creation of ``payload`` made, None when there is none, or
    :data:`UNRESOLVED` when the look-up kept failing (the caller treats it as ambiguous)."""
    client = ctx.client_for(take.key)  # the account that sent it: ids are kept per account
    found = client if isinstance(client, ResolvesLostAnswers) else None
    assert found is not None, "look_up without a provider that resolves lost answers"
    attempt = 0
    while True:
        try:
            state = await found.resolve_lost(payload)
        except Exception as exc:
            decision = classify(exc, Stage.LOOKUP)
            if decision.reaction is Reaction.PROPAGATE or not isinstance(exc, GatewayError):
                raise
            if decision.reaction is not Reaction.BACK_OFF or \
                    attempt >= ctx.settings.backoff.max_attempts:  # HOLD_AMBIGUOUS
                log.warning("lost_answer_unresolved", error=exc.message)
                return UNRESOLVED
            delay = ctx.settings.backoff.delay(attempt, decision.retry_after)
            attempt += 1
            log.info("lost_answer_lookup_retry", error=exc.message, delay=round(delay, 3))
            await asyncio.sleep(delay)
            continue
        log.info("lost_answer_resolved", found=state is not None,
                 task_id=None if state is None else state.task_id, take=take.key)
        return state
