"""The spending cap: credits are reserved *before* each creation, because billing starts there.

``budget.max_credits`` bounds what one manifest may ever reserve, across all its runs, in the
unit its provider bills in (runner.core.money: gateway credits; ``max_units`` for Kling units,
``max_usd`` for fal dollars): a guard holds one unit, and what other providers spent in
theirs never counts against it. What earlier runs committed in that unit comes from the store
(:meth:`StateStore.credits_committed`); this run
adds an estimate (:func:`runner.wire.payload.estimate_credits`) before each creation request and
replaces it with the gateway's ``usage.credits_reserved`` once the answer arrives, so that a
wrong rate table corrects itself after the first task. A creation that certainly did not
happen (refused with 4xx, 429) gives its reservation back; an ambiguous one keeps it, since it
may have been billed.

A take reserves when its turn at the creation pace has come, in the same step (no ``await``)
as its intent is committed and its request leaves: no reservation ever waits. "Reserved" is
thus what was sent (or is on the wire), so a take that fits is never dropped because a later
one did not, and a take stopped while it waited (Ctrl-C) has nothing to give back.

When the next take would go over the cap, nothing more is submitted: skipping it to squeeze
in a cheaper one would make the order of a shot list depend on prices, which surprises people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from runner.core.money import CAP_KEYS, CREDITS, format_amount, unit_of

if TYPE_CHECKING:
    from runner.core.model import Manifest
    from runner.state.protocol import Store

log = structlog.get_logger()


@dataclass
class BudgetGuard:
    """Reservations against ``max_credits`` (None: no cap, only counting).

    ``committed`` is what the store already holds as reserved by earlier runs (and by takes
    adopted in flight); reservations of this run are keyed by take key.
    """

    max_credits: float | None
    committed: float = 0.0
    unit: str = CREDITS  # what max_credits, committed and every reservation are counted in
    _reserved: dict[str, float] = field(default_factory=dict)
    exhausted: bool = False
    # Kept in step with _reserved: the progress display asks for the total on every state
    # change, and summing 20,000 reservations each time made a long run quadratic.
    _sum: float = 0.0

    @property
    def reserved(self) -> float:
        """Credits reserved by this run so far (estimates and gateway figures)."""
        return self._sum

    def _put(self, key: str, credits: float) -> None:
        self._sum += credits - self._reserved.get(key, 0.0)
        self._reserved[key] = credits

    def _drop(self, key: str) -> None:
        self._sum -= self._reserved.pop(key, 0.0)
        if not self._reserved:
            self._sum = 0.0  # no rounding residue once nothing is reserved

    @property
    def total(self) -> float:
        """Credits the manifest has reserved in its life, this run included."""
        return self.committed + self.reserved

    @property
    def remaining(self) -> float | None:
        """Credits still available, or None without a cap."""
        if self.max_credits is None:
            return None
        return self.max_credits - self.total

    def try_reserve(self, key: str, estimate: float | None) -> bool:
        """Reserve ``estimate`` for take ``key``; False (and stop for good) if over the cap.

        An unknown estimate (no rate for the resolution) reserves nothing up front; the
        gateway's figure corrects it when the task is created.
        """
        if self.exhausted:
            return False
        cost = estimate or 0.0
        if self.max_credits is not None and self.total + cost > self.max_credits + 1e-9:
            self.exhausted = True
            # Info: the run's stop line says it to the user (run.log keeps this one).
            log.info("budget_exhausted", take=key, estimate=cost,
                     reserved=round(self.total, 4), max_credits=self.max_credits,
                     unit=self.unit)
            return False
        self._put(key, self._reserved.get(key, 0.0) + cost)
        return True

    def correct(self, key: str, estimate: float | None, actual: float | None) -> None:
        """Replace ``key``'s reservation of ``estimate`` by the gateway's ``actual`` figure."""
        if actual is None:
            return
        current = self._reserved.get(key, 0.0)
        self._put(key, max(0.0, current - (estimate or 0.0)) + actual)

    def release(self, key: str, estimate: float | None) -> None:
        """Give back ``estimate`` for ``key``: the creation certainly did not happen."""
        current = self._reserved.get(key, 0.0) - (estimate or 0.0)
        if current <= 1e-9:
            self._drop(key)
        else:
            self._put(key, current)

    def learn_ledger(self, ledger_total: float) -> None:
        """The shared ledger refused a creation (a team's store): take its total, which other
        runners' creations raised, as this guard's, so that the stop line's figures are the
        ones that passed the cap; and stop for good, as a refusal of the guard's own does."""
        self.committed = max(self.committed, ledger_total - self.reserved)
        self.exhausted = True

    def stop_message(self, key: str, estimate: float | None) -> str:
        """Why the run stopped submitting at ``key``, in the guard's unit, with the setting
        that raises the cap."""
        unit = self.unit
        return (f"budget reached: {format_amount(self.total, unit, bare=True)} of "
                f"{format_amount(self.max_credits, unit, short=True)} reserved and the next "
                f"take ({key}, "
                f"about {format_amount(estimate or 0.0, unit)}) would exceed it; raise "
                f"budget.{CAP_KEYS.get(unit, 'max_credits')} or --max-credits to render the rest")


def budget_guard(cap: float | None, manifest: Manifest, store: Store) -> BudgetGuard:
    """The run's guard: ``cap`` (flag or manifest, in the manifest's provider's unit) over
    what the store says was committed in that unit."""
    unit = unit_of(manifest.api.provider)
    return BudgetGuard(cap, store.credits_committed(unit), unit=unit)
