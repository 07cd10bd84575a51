"""How a suggested command is phrased: always with what it spends.

A user told "use --retry-failed" once paid a second time for four renders the gateway still
held (issue 21): the advice did not say that the command creates new tasks, nor that a plain
run would have collected them for nothing. So every message that suggests a command says
whether it spends, in the words of this module, the same in ``run``, ``plan`` and ``status``.

Outside :mod:`runner.cli.commands` so that the engine's summary and the commands share it.
"""

from __future__ import annotations

from collections.abc import Iterable

from runner.core.money import CREDITS, RATE_KEYS, format_amount
from runner.core.words import count as counted

SPENDS_NOTHING = "spends nothing"
COLLECT_AGAIN = f"run again to collect them ({SPENDS_NOTHING})"
# A run after a stop: what is paid is collected for nothing, only what was never sent is paid.
RESUMES = "it collects what is paid for without spending and creates only what was not sent"
FIRST_RUN = "which spends credits; `shotrun plan MANIFEST` shows how many and sends nothing"


def cost(credits: float, unpriced: int = 0, unit: str = CREDITS) -> str:
    """``about 97.2 credits`` (``about 1.8 Kling units``, ``about $0.25``: in the unit the
    provider bills in, :mod:`runner.core.money`); what is unknown said so (``unpriced``: takes
    without a rate)."""
    if unpriced and not credits:
        return f"cost unknown (no rate in budget.{RATE_KEYS[unit]})"
    text = f"about {format_amount(credits, unit, short=True)}"
    return text + (f" plus {counted(unpriced, 'take')} without a rate" if unpriced else "")


def _tasks_and_cost(number: int, credits: float, unpriced: int, unit: str) -> str:
    """``4 new tasks, about 97.2 credits``: the object of "creates" and "would create"."""
    return f"{counted(number, 'new task')}, {cost(credits, unpriced, unit)}"


def new_tasks(number: int, credits: float, unpriced: int = 0, unit: str = CREDITS) -> str:
    """``creates 4 new tasks, about 97.2 credits``: what a command that renders anew spends."""
    return f"creates {_tasks_and_cost(number, credits, unpriced, unit)}"


def would_create(flag: str, number: int, credits: float, unpriced: int = 0,
                 unit: str = CREDITS) -> str:
    """``--retry-failed would create 4 new tasks, about 97.2 credits``."""
    return f"{flag} would create {_tasks_and_cost(number, credits, unpriced, unit)}"


def total(estimates: Iterable[float | None]) -> tuple[int, float, int]:
    """(takes, credits, takes without a rate) of per-take estimates."""
    number = unpriced = 0
    credits = 0.0
    for estimate in estimates:
        number += 1
        if estimate is None:
            unpriced += 1
        else:
            credits += estimate
    return number, credits, unpriced
