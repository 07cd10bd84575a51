"""Counters of what clients did to the emulator, for tests and benchmarks to assert on.

A benchmark's claims ("polls little", "keeps the gateway busy", "never submits twice") are
checked against these numbers, counted on the server side where the client cannot fudge them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AccountStats:
    """What one account's keys did (``accounts`` in the emulator's settings): tests show
    seats per account with these, the way ``max_in_flight`` shows the emulator's."""

    creation_requests: int = 0  # with its key (the total counts them before any key check)
    accepted_tasks: int = 0
    credits_reserved: float = 0.0  # as the global one: less what cancels released
    in_flight: int = 0
    max_in_flight: int = 0
    rate_limited: int = 0  # creations refused over this account's concurrency cap

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {"creation_requests": self.creation_requests,
                "accepted_tasks": self.accepted_tasks,
                "credits_reserved": round(self.credits_reserved, 4),
                "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                "rate_limited": self.rate_limited}


@dataclass
class Stats:
    """Mutable counters; :meth:`as_dict` is the body of ``GET /_emulator/stats``."""

    creation_requests: int = 0
    accepted_tasks: int = 0
    # In the unit of the wire format served (gateway credits, Kling units, fal dollars),
    credits_reserved: float = 0.0  # summed over accepted tasks (billing starts at creation),
    # less those of tasks cancelled while queued (a request that never ran bills nothing)
    queue_refusals: int = 0  # fal inputs accepted into the queue, then refused (no task)
    cancel_requests: int = 0  # fal cancels asked (answered or not; neither polls nor creations)
    cancelled_tasks: int = 0  # taken out of the queue by a cancel (not in failed_tasks)
    duplicate_payloads: int = 0
    polls: int = 0
    # By the id the client was given (the gateway's task id, fal's request id, Kling's task
    # id): what a test or benchmark holds from the store, in every wire format.
    polls_per_task: Counter[str] = field(default_factory=Counter)
    max_in_flight: int = 0
    in_flight: int = 0
    uploads: int = 0
    downloads: int = 0
    downloads_active: int = 0  # result transfers still being sent
    expired_link_hits: int = 0
    rate_limited: int = 0
    resets: int = 0
    truncated: int = 0
    injected_errors: int = 0
    failed_tasks: int = 0
    completed_tasks: int = 0
    renders: int = 0
    render_seconds: float = 0.0  # wall time spent rendering, summed over threads
    # By account label (never by key): the listed accounts' own counts, the default
    # account's being the rest of the totals above.
    accounts: dict[str, AccountStats] = field(default_factory=dict)

    def account(self, label: str) -> AccountStats:
        """The counters of the account named ``label`` (made on first use)."""
        return self.accounts.setdefault(label, AccountStats())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "creation_requests": self.creation_requests,
            "accepted_tasks": self.accepted_tasks,
            "credits_reserved": round(self.credits_reserved, 4),
            "queue_refusals": self.queue_refusals,
            "cancel_requests": self.cancel_requests,
            "cancelled_tasks": self.cancelled_tasks,
            "duplicate_payloads": self.duplicate_payloads,
            "polls": self.polls,
            "polls_per_task": dict(self.polls_per_task),
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "uploads": self.uploads,
            "downloads": self.downloads,
            "downloads_active": self.downloads_active,
            "expired_link_hits": self.expired_link_hits,
            "rate_limited": self.rate_limited,
            "resets": self.resets,
            "truncated": self.truncated,
            "injected_errors": self.injected_errors,
            "failed_tasks": self.failed_tasks,
            "completed_tasks": self.completed_tasks,
            "renders": self.renders,
            "render_seconds": round(self.render_seconds, 4),
            "accounts": {label: counts.as_dict()
                         for label, counts in sorted(self.accounts.items())},
        }
