"""Per-caller budgets (SPEC §11): requests per minute, tokens per minute, requests in flight.

Budgets are token buckets refilled continuously: ``requestsPerMinute: 60`` admits a burst of 60 requests,
then one a second. A request takes one request token and, when ``maxConcurrent`` is set, a slot it gives
back when its answer is finished. Tokens per minute are charged with the tokens the answer reports,
after it: the bucket may go below zero, and while it is not above zero the caller's next request is
refused. A refused request takes nothing. 0 means unlimited, for each budget.

The check is made with the nonce claim, by the :class:`Gate` that owns both, so a request costs one call
to the store:

* :class:`MemoryGate` — one process: the nonce store's claim, then the buckets here (no await between).
* :class:`~function_node.node.limits_redis.RedisGate` — with ``nonceCache.backend: redis``: one Lua
  script claims the nonce and checks and takes the budgets, so every worker and replica sharing the
  Redis enforces one limit together; giving back the slot and charging the tokens is a second script
  after the answer, only for callers with one of those budgets.

A refusal is not raised here: the :class:`Admission` carries it, and the metering middleware, inside the
auth middleware's call of the handler, answers it (429 ``rate_limited``, signed like every answer to an
authenticated request).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from function_node.config.settings import LimitsSettings

if TYPE_CHECKING:
    from prometheus_client import Counter

    from function_node.node.nonces import NonceStore

__all__ = [
    "CONCURRENT",
    "DEFAULT_SLOT_LEASE_S",
    "NO_LIMITS",
    "REQUESTS_PER_MINUTE",
    "TOKENS_PER_MINUTE",
    "Admission",
    "Gate",
    "LimitPolicy",
    "LimitSpec",
    "MemoryGate",
    "Refusal",
    "TokenBuckets",
    "create_gate",
    "new_slot_id",
    "retry_seconds",
]

# The budgets' names: config keys, the ``limit`` label of fxn_rate_limited_total, and messages.
REQUESTS_PER_MINUTE: Final = "requestsPerMinute"
TOKENS_PER_MINUTE: Final = "tokensPerMinute"
CONCURRENT: Final = "maxConcurrent"
_MINUTE: Final = 60.0
# How long a concurrency slot in Redis outlives a worker that died holding it: the longest answer
# backend.yaml allows, plus a minute (the app passes it); this is the default timeouts.total's.
DEFAULT_SLOT_LEASE_S: Final = 16 * 60.0
_CONCURRENCY_RETRY_S: Final = 1.0  # a slot frees when some answer ends: nothing says when, so ask again soon
_MEMORY_SLOT: Final = "held"  # in one process a slot needs no identity, only to be given back once


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One caller's budgets, resolved (0 = unlimited)."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    max_concurrent: int = 0

    @property
    def unlimited(self) -> bool:
        return not (self.requests_per_minute or self.tokens_per_minute or self.max_concurrent)


UNLIMITED: Final = LimitSpec()


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: str  # REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE or CONCURRENT
    retry_after: int  # whole seconds, at least 1

    def message(self, spec: LimitSpec) -> str:
        if self.limit == CONCURRENT:
            what = f"{spec.max_concurrent} requests in flight (limits maxConcurrent)"
        elif self.limit == REQUESTS_PER_MINUTE:
            what = f"{spec.requests_per_minute} requests per minute (limits requestsPerMinute)"
        else:
            what = f"{spec.tokens_per_minute} tokens per minute (limits tokensPerMinute)"
        return f"this caller is over its budget of {what}; retry in {self.retry_after}s"


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of a request's admission: its budgets, the concurrency slot it holds (its id, or ""),
    and the refusal when it is over a budget."""

    spec: LimitSpec
    slot: str = ""
    refusal: Refusal | None = None

    @property
    def needs_settle(self) -> bool:
        """Whether the answer must be reported back: a slot to give back or tokens to charge."""
        return self.refusal is None and bool(self.slot or self.spec.tokens_per_minute)


NO_LIMITS: Final = Admission(UNLIMITED)


def retry_seconds(seconds: float) -> int:
    """``Retry-After``: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


def new_slot_id() -> str:
    return os.urandom(8).hex()


class LimitPolicy:
    """``limits`` resolved once: every configured caller's budgets, and the default for the others."""

    __slots__ = ("_callers", "default")

    def __init__(self, settings: LimitsSettings) -> None:
        self.default = _spec(settings, "")
        self._callers = {address: _spec(settings, address) for address in settings.callers}

    def for_caller(self, address: str) -> LimitSpec:
        """The budgets of ``address`` (lower-case, as the auth layer gives it)."""
        return self._callers.get(address, self.default)

    @property
    def anything_limited(self) -> bool:
        return not self.default.unlimited or any(not s.unlimited for s in self._callers.values())


def _spec(settings: LimitsSettings, address: str) -> LimitSpec:
    values = settings.for_caller(address) if address else settings.default
    spec = LimitSpec(values.requests_per_minute, values.tokens_per_minute, values.max_concurrent)
    return UNLIMITED if spec.unlimited else spec


class Gate(Protocol):
    """The nonce claim and the budgets' check of a request, together (see the module docstring).

    ``in_process``: settling needs no I/O, so :meth:`settle_soon` settles at once."""

    in_process: bool

    async def claim(self, address: str, nonce: str, *, limited: bool) -> Admission | None:
        """Claim the nonce (None: a replay); then, when ``limited`` (a ``/v1/*`` request), check and
        take the caller's budgets. Raises NonceQuotaError and NonceStoreError as the nonce store does."""
        ...

    async def settle(self, address: str, admission: Admission, tokens: int) -> None:
        """The answer is finished: give back its slot and charge its tokens. Never raises."""
        ...

    def settle_soon(self, address: str, admission: Admission, tokens: int) -> None:
        """:meth:`settle` without waiting, for a request being cancelled (its task cannot wait)."""
        ...

    async def close(self) -> None:
        """Wait for the settlements still running."""
        ...


class _Bucket:
    """One caller's state: the two buckets (level, last refill) and the requests in flight."""

    __slots__ = ("in_flight", "requests", "requests_at", "tokens", "tokens_at")

    def __init__(self, spec: LimitSpec, now: float) -> None:
        self.requests = float(spec.requests_per_minute)
        self.requests_at = now
        self.tokens = float(spec.tokens_per_minute)
        self.tokens_at = now
        self.in_flight = 0


class TokenBuckets:
    """The budgets of every caller of one process. Nothing here awaits, so each call is atomic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._callers: dict[str, _Bucket] = {}

    def admit(self, caller: str, spec: LimitSpec) -> Admission:
        now = self._clock()
        state = self._callers.get(caller)
        if state is None:
            state = self._callers[caller] = _Bucket(spec, now)
        rpm, tpm, concurrent = spec.requests_per_minute, spec.tokens_per_minute, spec.max_concurrent
        over = False
        if rpm:
            state.requests = min(rpm, state.requests + (now - state.requests_at) * rpm / _MINUTE)
            state.requests_at = now
            over = state.requests < 1
        if concurrent and state.in_flight >= concurrent:
            over = True
        if tpm:
            state.tokens = min(tpm, state.tokens + (now - state.tokens_at) * tpm / _MINUTE)
            state.tokens_at = now
            over = over or state.tokens <= 0
        if over:
            return Admission(spec, refusal=self._refusal(state, spec))
        if rpm:
            state.requests -= 1
        if concurrent:
            state.in_flight += 1
            return Admission(spec, slot=_MEMORY_SLOT)
        return Admission(spec)

    @staticmethod
    def _refusal(state: _Bucket, spec: LimitSpec) -> Refusal:
        """The budget that keeps the request out longest, and how long (buckets just refilled)."""
        waits: list[tuple[float, str]] = []
        rpm, tpm = spec.requests_per_minute, spec.tokens_per_minute
        if rpm and state.requests < 1:
            waits.append(((1 - state.requests) * _MINUTE / rpm, REQUESTS_PER_MINUTE))
        if spec.max_concurrent and state.in_flight >= spec.max_concurrent:
            waits.append((_CONCURRENCY_RETRY_S, CONCURRENT))
        if tpm and state.tokens <= 0:
            waits.append((-state.tokens * _MINUTE / tpm, TOKENS_PER_MINUTE))
        wait, limit = max(waits, key=lambda w: w[0])
        return Refusal(limit, retry_seconds(wait))

    def settle(self, caller: str, admission: Admission, tokens: int) -> None:
        state = self._callers.get(caller)
        if state is None:
            return
        if admission.slot:
            state.in_flight = max(0, state.in_flight - 1)
        tpm = admission.spec.tokens_per_minute
        if tpm and tokens:
            now = self._clock()
            state.tokens = min(tpm, state.tokens + (now - state.tokens_at) * tpm / _MINUTE) - tokens
            state.tokens_at = now

    def in_flight(self, caller: str) -> int:
        state = self._callers.get(caller)
        return state.in_flight if state is not None else 0


class MemoryGate:
    """Any nonce store's claim, then this process's buckets (the memory store's companion)."""

    in_process = True

    def __init__(
        self, nonces: NonceStore, settings: LimitsSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.nonces = nonces
        self.policy = LimitPolicy(settings)
        self.buckets = TokenBuckets(clock)

    async def claim(self, address: str, nonce: str, *, limited: bool) -> Admission | None:
        if not await self.nonces.claim(address, nonce):
            return None
        spec = self.policy.for_caller(address) if limited else UNLIMITED
        return NO_LIMITS if spec is UNLIMITED else self.buckets.admit(address, spec)

    async def settle(self, address: str, admission: Admission, tokens: int) -> None:
        self.buckets.settle(address, admission, tokens)

    def settle_soon(self, address: str, admission: Admission, tokens: int) -> None:
        self.buckets.settle(address, admission, tokens)

    async def close(self) -> None:
        return None


def create_gate(
    nonces: NonceStore,
    settings: LimitsSettings,
    *,
    slot_lease: float = DEFAULT_SLOT_LEASE_S,
    settle_errors: Counter | None = None,
) -> Gate:
    """The gate for ``nonces``: in Redis with the Redis nonce store, else in this process."""
    from function_node.node.nonces_redis import RedisNonceStore

    if isinstance(nonces, RedisNonceStore):
        from function_node.node.limits_redis import RedisGate

        return RedisGate(nonces, settings, slot_lease=slot_lease, settle_errors=settle_errors)
    return MemoryGate(nonces, settings)
