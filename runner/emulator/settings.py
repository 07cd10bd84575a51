"""How the emulator behaves: timings, render mode, and every fault it can inject.

One frozen value, so that a running emulator can be given a new behaviour by swapping the
whole object (tests do this between phases) and nothing half-changes. The manifest's
``api.emulator`` section and the ``shotrun emulator`` flags use the same key names as the
fields here, and :meth:`EmulatorSettings.from_mapping` is the single place that checks them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runner.core.errors import ALL_TASK_CODES
from runner.core.money import DEFAULT_UNIT_RATES, DEFAULT_USD_RATES, RATE_KEYS, unit_of

ERROR_STATUSES = ("429", "500", "502", "503")
RENDER_MODES = ("full", "cached")
PROGRESS_MODES = ("linear", "none")
FAL_VALIDATION_MODES = ("submit", "queue")
DEFAULT_EMULATOR_RATES: Mapping[str, float] = MappingProxyType(
    {"720p": 8.1, "1080p": 10.8, "4k": 16.2, "audio": 2.7}
)
# Each wire format charges in its provider's own unit (runner.core.money), at the public prices
# providers.md gives: the Kling API in units, fal.ai in dollars (fal's answers never say it).
# The fields are named as the manifest's budget names each unit's rates (RATE_KEYS).
_DEFAULT_PRICES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {"rates": DEFAULT_EMULATOR_RATES, "unit_rates": DEFAULT_UNIT_RATES,
     "usd_rates": DEFAULT_USD_RATES})
UPLOAD_TTL = 72 * 3600.0


def _no_errors() -> Mapping[str, float]:
    return MappingProxyType({})


def _no_accounts() -> Mapping[str, Account]:
    return MappingProxyType({})


def key_label(key: str) -> str:
    """The name an account is shown by when its settings give none: ``key-`` and the first
    8 hex digits of the key's SHA-256, which names it without revealing any of it."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Account:
    """One provider account the emulator plays, as its keys see it.

    ``concurrency_cap`` bounds its tasks pending or processing (None: only the emulator-wide
    cap); ``credits`` is its own balance in the provider's unit (None: only the emulator-wide
    one). ``label`` names it in stats, messages and logs, where its key never appears. Keys
    given one label are one account: Kling's concurrency "is per account and pack, shared by
    all its keys" (docs/providers.md), so they must give it the same limits.
    """

    label: str
    concurrency_cap: int | None = None
    credits: float | None = None


def _default_rates() -> Mapping[str, float]:
    return DEFAULT_EMULATOR_RATES


def _default_unit_rates() -> Mapping[str, float]:
    return DEFAULT_UNIT_RATES


def _default_usd_rates() -> Mapping[str, float]:
    return DEFAULT_USD_RATES


@dataclass(frozen=True)
class EmulatorSettings:
    """The emulator's behaviour. Times are seconds, rates are probabilities in 0..1.

    ``queue_time``/``processing_time`` are what a task spends pending/processing (each
    stretched or shrunk by up to ``jitter`` as a fraction). ``estimate_factor`` scales the
    ``estimated_time`` a task reports (not its real timing), to play a gateway whose hint is
    wrong: 1/3 reports a third of the planned time. ``concurrency_cap`` bounds the
    tasks pending or processing at once; creations beyond it get 429 with ``Retry-After``.
    ``error_rates`` gives, per HTTP status ("429", "500", "502", "503"), the probability that
    an API request is answered with that error instead. ``reset_rate`` aborts connections
    without an answer; ``truncate_rate`` cuts downloads short; ``download_rate`` throttles
    them (bytes per second). ``api_key`` None accepts any bearer key (the header is still
    required).

    Roughness of a gateway shotrun has not met (issue 14): ``estimated_time`` is always a
    whole number of seconds, rounded as a real gateway's ``300`` is, so a sub-second test
    task may report 0; ``output_scale`` renders videos at that fraction of the nominal size
    of their resolution (0.125: 160x90 for 720p 16:9; the gateway documents no pixel size);
    ``progress: none`` leaves ``progress`` out of every task body, as a gateway that never
    reports it does.

    ``accounts`` maps API keys (Kling: secret keys) to :class:`Account` settings: each
    account's tasks in flight are bounded by its own ``concurrency_cap`` and its spend by its
    ``credits``, counted apart in the stats under its label, and its tasks are found only
    with its keys (another account's task id answers 404, as a real service's tasks belong
    to the account that created them). A key not listed is the default account, as without
    ``accounts``; ``concurrency_cap`` and ``credits`` above bound every account together.
    Listed keys are accepted even when ``api_key`` names another.

    ``fal_validation`` (fal.ai's wire format only; ignored by the gateway's and Kling's):
    ``submit`` refuses a bad input with 422 at submit; ``queue`` accepts any JSON input into
    the queue and refuses it only when it is "run": its status reads ``IN_QUEUE`` once, then
    ``COMPLETED`` with the refusal as ``error``, and its result answers the 422 the submit
    would have; it never renders and costs nothing. docs/providers.md does not say when fal checks
    an input, so a client must read a refusal from either place.
    """

    queue_time: float = 0.5
    processing_time: float = 3.0
    jitter: float = 0.0
    estimate_factor: float = 1.0
    render: str = "full"
    concurrency_cap: int | None = None
    failure_rate: float = 0.0
    failure_codes: tuple[str, ...] = ("service_error",)
    error_rates: Mapping[str, float] = field(default_factory=_no_errors)
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    link_ttl: float = 86400.0
    download_rate: float | None = None
    seed: int | None = None
    api_key: str | None = None
    rates: Mapping[str, float] = field(default_factory=_default_rates)  # gateway credits/s
    unit_rates: Mapping[str, float] = field(default_factory=_default_unit_rates)  # Kling's
    usd_rates: Mapping[str, float] = field(default_factory=_default_usd_rates)  # fal's $/s
    upload_ttl: float = UPLOAD_TTL
    retry_after: float | None = None  # Retry-After of 429s; None: computed, whole seconds
    check_images: bool = False  # fail tasks whose images break the documented size rules
    credits: float | None = None  # the account's balance in its unit; creations beyond: 402
    output_scale: float = 1.0  # videos at this fraction of the nominal size (both sides)
    progress: str = "linear"  # "none": task bodies carry no progress field at all
    fal_validation: str = "submit"  # "queue": fal refuses a bad input after queueing it
    # API key -> its account; keys are secrets: out of the repr, never in a message
    accounts: Mapping[str, Account] = field(default_factory=_no_accounts, repr=False)

    def __post_init__(self) -> None:
        try:
            accounts = _accounts(self.accounts)
        except ValueError as exc:
            raise ValueError(f"invalid emulator settings: {exc}") from None
        object.__setattr__(self, "accounts", MappingProxyType(accounts))
        problems = list(self._problems())
        if problems:
            raise ValueError("invalid emulator settings: " + "; ".join(problems))
        # Freeze the mappings whatever the caller passed (a dict stays mutable otherwise).
        object.__setattr__(self, "error_rates", MappingProxyType(dict(self.error_rates)))
        for name in _DEFAULT_PRICES:
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "failure_codes", tuple(self.failure_codes))

    def _problems(self) -> list[str]:
        problems: list[str] = []
        for name in ("queue_time", "processing_time"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if not 0.0 < self.estimate_factor < math.inf:
            problems.append("estimate_factor must be > 0 (1 reports the planned time)")
        for name in ("jitter", "failure_rate", "reset_rate", "truncate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        if not 0.0 < self.output_scale <= 4.0:
            problems.append("output_scale must be > 0 and at most 4 (1 renders nominal sizes)")
        if self.progress not in PROGRESS_MODES:
            problems.append(f"progress must be one of {', '.join(PROGRESS_MODES)}")
        if self.fal_validation not in FAL_VALIDATION_MODES:
            problems.append("fal_validation must be one of "
                            f"{', '.join(FAL_VALIDATION_MODES)} (fal.ai only)")
        if self.render not in RENDER_MODES:
            problems.append(f"render must be one of {', '.join(RENDER_MODES)}")
        if self.concurrency_cap is not None and self.concurrency_cap < 1:
            problems.append("concurrency_cap must be >= 1")
        unknown = set(self.failure_codes) - ALL_TASK_CODES
        if unknown or not self.failure_codes:
            problems.append("failure_codes must be documented business codes, e.g. service_error")
        for status, rate in self.error_rates.items():
            if status not in ERROR_STATUSES:
                problems.append(f"error_rates keys must be among {', '.join(ERROR_STATUSES)}")
            elif not 0.0 <= rate <= 1.0:
                problems.append(f"error_rates[{status}] must be between 0 and 1")
        if sum(self.error_rates.values()) > 1.0:
            problems.append("error_rates must add up to at most 1")
        if self.link_ttl <= 0 or self.upload_ttl <= 0:
            problems.append("link_ttl and upload_ttl must be > 0")
        if self.download_rate is not None and self.download_rate <= 0:
            problems.append("download_rate must be > 0 bytes per second")
        if self.credits is not None and self.credits < 0:
            problems.append("credits must be >= 0")
        if self.retry_after is not None and self.retry_after < 0:
            problems.append("retry_after must be >= 0")
        problems.extend(_account_problems(self.accounts))
        for name, defaults in _DEFAULT_PRICES.items():  # a price the emulator would bill
            prices: Mapping[str, float] = getattr(self, name)
            if set(prices) - set(defaults):
                problems.append(f"{name} keys must be among {', '.join(defaults)}")
            problems.extend(f"{name}[{key}] must be a number >= 0"
                            for key, price in prices.items()
                            if not 0.0 <= price < math.inf)
        return problems

    def account_of(self, key: str) -> Account | None:
        """The listed account ``key`` belongs to (None: the default account)."""
        return self.accounts.get(key)

    def prices(self, provider: str) -> Mapping[str, float]:
        """Per second, in ``provider``'s unit: what a task of that wire format costs."""
        value: Mapping[str, float] = getattr(self, RATE_KEYS[unit_of(provider)])
        return value

    def replace(self, **changes: Any) -> EmulatorSettings:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EmulatorSettings:
        """Settings from a manifest's ``api.emulator`` section (same key names as the fields).

        Lists become tuples, ``error_rates`` keys may be integers (``429: 0.1``). Unknown
        keys and bad values raise ``ValueError`` naming the key.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                known = ", ".join(sorted(names))
                raise ValueError(f"unknown emulator setting {key!r}; known: {known}")
            if key == "error_rates":
                if not isinstance(value, Mapping):
                    raise ValueError("error_rates must be a mapping such as {429: 0.1}")
                value = {str(k): float(v) for k, v in value.items()}
            elif key in _DEFAULT_PRICES:
                if not isinstance(value, Mapping):
                    raise ValueError(f"{key} must be a mapping such as {{720p: 8.1}}")
                value = {**_DEFAULT_PRICES[key], **{str(k): float(v) for k, v in value.items()}}
            elif key == "accounts":
                if not isinstance(value, Mapping):
                    raise ValueError("accounts must be a mapping of API keys to settings such "
                                     "as {concurrency_cap: 2}")
            elif key == "failure_codes":
                value = (value,) if isinstance(value, str) else tuple(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"invalid emulator settings: {exc}") from None


def _accounts(given: Mapping[str, Any]) -> dict[str, Account]:
    """``accounts`` as :class:`Account` values, from the mappings a manifest or a test gives
    (``{concurrency_cap: 2, credits: 100, label: "a"}``); ValueError naming the account by
    its label or its place, never by its key."""
    accounts: dict[str, Account] = {}
    for place, (key, value) in enumerate(given.items(), start=1):
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"accounts: key number {place} must be a non-empty string")
        if isinstance(value, Account):
            accounts[key] = value
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"accounts[{key_label(key)}] must be a mapping such as "
                             "{concurrency_cap: 2}")
        unknown = sorted(set(value) - {f.name for f in dataclasses.fields(Account)})
        name = value.get("label", key_label(key))
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r} of accounts[{name}]; known: "
                             "concurrency_cap, credits, label")
        accounts[key] = Account(**{"label": key_label(key), **value})
    return accounts


def _account_problems(accounts: Mapping[str, Account]) -> list[str]:
    problems: list[str] = []
    by_label: dict[str, Account] = {}
    for account in accounts.values():
        name = f"accounts[{account.label}]"
        if not isinstance(account.label, str) or not account.label.strip():
            problems.append("accounts: a label must be a non-empty string")
            continue
        cap = account.concurrency_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            problems.append(f"{name}.concurrency_cap must be a whole number >= 1")
        if account.credits is not None and not 0.0 <= account.credits < math.inf:
            problems.append(f"{name}.credits must be >= 0")
        twin = by_label.setdefault(account.label, account)
        if twin != account:
            problems.append(f"{name}: keys of one account (one label) must give it the same "
                            "concurrency_cap and credits")
    return problems
