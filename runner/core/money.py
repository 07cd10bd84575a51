"""Money: each provider's own unit, one figure per take, and one way to print an amount.

The three providers bill in three currencies that do not convert into one another at any
rate shotrun could know: the gateway in its *credits*, the official Kling API in *units* of
a resource pack (``final_unit_deduction``), fal.ai in US *dollars* (providers.md). A figure
is therefore never shown, summed or capped without its unit: a manifest caps each unit on
its own (``budget.max_credits``, ``max_units``, ``max_usd``) and estimates each from its own
rates (``budget.rates``, ``unit_rates``, ``usd_rates``).

Every view of a take's cost (the run's summary, ``status``, ``plan``, the report, the review
page) asks :func:`take_figure` for it, so they cannot disagree: what the provider charged
when it said so, else the estimate, marked as one. Every view prints amounts with
:func:`format_amount`, which never prints ``inf`` nor a 309-digit number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

CREDITS, UNITS, USD = "credits", "units", "usd"
MONEY_UNITS = (CREDITS, UNITS, USD)
# Who bills in which unit (the provider names of runner.wire.specs).
UNIT_OF_PROVIDER: Mapping[str, str] = MappingProxyType(
    {"gateway": CREDITS, "kling": UNITS, "fal": USD})
# The manifest's names, per unit (budget.<cap> and budget.<rates>).
CAP_KEYS: Mapping[str, str] = MappingProxyType(
    {CREDITS: "max_credits", UNITS: "max_units", USD: "max_usd"})
RATE_KEYS: Mapping[str, str] = MappingProxyType(
    {CREDITS: "rates", UNITS: "unit_rates", USD: "usd_rates"})
_WORDS = {CREDITS: "credits", UNITS: "Kling units", USD: "USD"}

# Per second of video. The gateway's public page (gateway-api.md) gives 720p and 1080p only.
DEFAULT_CREDIT_RATES: Mapping[str, float] = MappingProxyType({"720p": 8.1, "1080p": 10.8})
# Kling's public price (providers.md): std 0.6 unit/s (0.8 with audio), pro 0.8 (1.0), 4k 3.0.
DEFAULT_UNIT_RATES: Mapping[str, float] = MappingProxyType(
    {"720p": 0.6, "1080p": 0.8, "4k": 3.0, "audio": 0.2})
# fal publishes 4k only ($0.42/s, audio not changing it); that is Kling's 3.0 units at $0.14
# a unit, so the other tiers are Kling's units at that price: estimates, set your own.
DEFAULT_USD_RATES: Mapping[str, float] = MappingProxyType(
    {"720p": 0.084, "1080p": 0.112, "4k": 0.42, "audio": 0.028})
DEFAULT_RATES_BY_UNIT: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {CREDITS: DEFAULT_CREDIT_RATES, UNITS: DEFAULT_UNIT_RATES, USD: DEFAULT_USD_RATES})

# Beyond this an amount is printed in scientific notation: no bill is that large, and a
# provider's nonsense (``1e308``) must not fill a line with digits.
_PLAIN_BELOW = 1e9


def unit_of(provider: str) -> str:
    """The unit ``provider`` bills in (credits for an unknown name: the gateway's)."""
    return UNIT_OF_PROVIDER.get(provider, CREDITS)


def unit_word(unit: str) -> str:
    """How a message names ``unit``: ``credits``, ``Kling units``, ``USD``."""
    return _WORDS.get(unit, unit)


def readable(amount: float | None) -> bool:
    """True for an amount that can be shown and added: a finite number, not negative."""
    return amount is not None and math.isfinite(amount) and amount >= 0


def format_amount(amount: float | None, unit: str | None = None, *, bare: bool = False,
                  short: bool = False) -> str:
    """``amount`` for a person: ``32.4 credits``, ``2.4 Kling units``, ``$0.34``.

    Credits and units to one decimal (the prices are per whole second, in tenths), dollars
    to the cent.

    Without ``unit``, or with ``bare``, the number alone (a table or line whose heading
    names the unit), still written as its unit's figures are; ``short`` drops trailing
    zeros (a cap: ``500``, not ``500.0``). None is ``?``
    (unknown), an unreadable figure (infinite, not a number) is ``unreadable``; a huge one is
    written ``1.0e+308``, never with its 309 digits.
    """
    if amount is None:
        return "?"
    if not math.isfinite(amount):
        return "unreadable"
    if abs(amount) >= _PLAIN_BELOW:
        number = f"{amount:.1e}"
    elif unit == USD:
        number = f"{amount:.2f}" if abs(amount) >= 0.01 or amount == 0 else f"{amount:.3g}"
    else:
        number = f"{amount:.1f}"
        if number == "-0.0":
            number = "0.0"
    if short and "e" not in number and "." in number:
        number = number.rstrip("0").rstrip(".")
    if unit is None or bare:
        return number
    if unit == USD:
        return f"-${number[1:]}" if number.startswith("-") else f"${number}"
    return f"{number} {unit_word(unit)}"


@dataclass(frozen=True, slots=True)
class Figure:
    """What a take costs as best known: ``amount`` in ``unit``; ``estimated`` when the
    provider did not say (fal never does; a creation whose answer was lost)."""

    amount: float | None
    unit: str
    estimated: bool

    def text(self) -> str:
        """``32.4 credits``, ``$0.34 (estimate)``, ``?``."""
        shown = format_amount(self.amount, self.unit)
        return f"{shown} (estimate)" if self.estimated and self.amount is not None else shown

    def cell(self) -> str:
        """The bare number for a table column (``~`` before an estimate)."""
        shown = format_amount(self.amount, None)
        return f"~{shown}" if self.estimated and self.amount is not None else shown

    def to_json(self) -> dict[str, Any]:
        """``{amount, unit, estimated}`` (an unreadable amount is null)."""
        amount = self.amount if self.amount is None or math.isfinite(self.amount) else None
        return {"amount": amount, "unit": self.unit, "estimated": self.estimated}


def take_figure(charged: float | None, estimate: float | None, unit: str | None) -> Figure:
    """A take's one figure: what the provider charged (``credits_reserved``) when it said a
    readable amount, else the estimate marked as one. Every view of a take calls this."""
    chosen_unit = unit or CREDITS
    if readable(charged):
        return Figure(charged, chosen_unit, False)
    return Figure(estimate if readable(estimate) else None, chosen_unit, estimate is not None)


@dataclass
class UnitTotal:
    """Sums of figures in one unit: ``charged`` (said by the provider) and ``estimated``."""

    charged: float = 0.0
    estimated: float = 0.0

    @property
    def total(self) -> float:
        return self.charged + self.estimated

    def to_json(self) -> dict[str, float]:
        return {"total": round(self.total, 6), "charged": round(self.charged, 6),
                "estimated": round(self.estimated, 6)}


def totals(figures: Iterable[Figure]) -> dict[str, UnitTotal]:
    """Per unit, the sums of ``figures`` (never one sum across units), in unit order."""
    found: dict[str, UnitTotal] = {}
    for figure in figures:
        if figure.amount is None:
            continue
        total = found.setdefault(figure.unit, UnitTotal())
        if figure.estimated:
            total.estimated += figure.amount
        else:
            total.charged += figure.amount
    order = {unit: n for n, unit in enumerate(MONEY_UNITS)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


def totals_json(by_unit: Mapping[str, UnitTotal]) -> dict[str, dict[str, float]]:
    """``{unit: {total, charged, estimated}}`` for ``--json`` documents."""
    return {unit: total.to_json() for unit, total in by_unit.items()}
