"""Per-caller budgets in one process: token buckets refilled continuously, slots, the tokens charged
after the answer, and the gate that checks them with the nonce claim."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from function_node.config.loader import load_settings
from function_node.config.settings import LimitsSettings, Settings
from function_node.node.limits import (
    CONCURRENT,
    NO_LIMITS,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_MINUTE,
    LimitPolicy,
    LimitSpec,
    MemoryGate,
    Refusal,
    TokenBuckets,
    create_gate,
    retry_seconds,
)
from function_node.node.limits_redis import RedisGate
from function_node.node.nonces import MemoryNonceStore
from function_node.node.nonces_redis import RedisNonceStore

ADDR = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
OTHER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"


class ManualClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def limits(document: dict[str, object]) -> LimitsSettings:
    return Settings.model_validate({"limits": document}).limits


def test_requests_per_minute_bursts_then_refills_continuously() -> None:
    clock = ManualClock()
    buckets = TokenBuckets(clock)
    spec = LimitSpec(requests_per_minute=6)
    assert [buckets.admit(ADDR, spec).refusal for _ in range(6)] == [None] * 6
    refused = buckets.admit(ADDR, spec)
    assert refused.refusal == Refusal(REQUESTS_PER_MINUTE, 10)  # one request every 10 s
    assert refused.slot == ""
    clock.now += 4.0
    assert buckets.admit(ADDR, spec).refusal == Refusal(REQUESTS_PER_MINUTE, 6)
    clock.now += 6.0
    assert buckets.admit(ADDR, spec).refusal is None
    assert buckets.admit(ADDR, spec).refusal is not None
    clock.now += 3600.0  # refilled to the burst, never past it
    assert [buckets.admit(ADDR, spec).refusal for _ in range(7)].count(None) == 6


def test_callers_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(ManualClock())
    spec = LimitSpec(requests_per_minute=1)
    assert buckets.admit(ADDR, spec).refusal is None
    assert buckets.admit(ADDR, spec).refusal is not None
    assert buckets.admit(OTHER, spec).refusal is None


def test_tokens_are_charged_after_the_answer_and_refuse_the_next_request() -> None:
    clock = ManualClock()
    buckets = TokenBuckets(clock)
    spec = LimitSpec(tokens_per_minute=600)  # 10 tokens a second
    first = buckets.admit(ADDR, spec)
    assert first.refusal is None and first.needs_settle
    buckets.settle(ADDR, first, 500)
    assert buckets.admit(ADDR, spec).refusal is None  # 100 left: the budget is not spent yet
    buckets.settle(ADDR, first, 250)  # -150 now
    assert buckets.admit(ADDR, spec).refusal == Refusal(TOKENS_PER_MINUTE, 15)
    clock.now += 15.0  # back to 0: still not above it
    assert buckets.admit(ADDR, spec).refusal == Refusal(TOKENS_PER_MINUTE, 1)
    clock.now += 0.1
    assert buckets.admit(ADDR, spec).refusal is None


def test_concurrency_slots_are_taken_and_given_back() -> None:
    buckets = TokenBuckets(ManualClock())
    spec = LimitSpec(max_concurrent=2)
    a, b = buckets.admit(ADDR, spec), buckets.admit(ADDR, spec)
    assert a.slot and b.slot  # each holds a slot to give back
    assert buckets.admit(ADDR, spec).refusal == Refusal(CONCURRENT, 1)
    assert buckets.in_flight(ADDR) == 2
    buckets.settle(ADDR, a, 0)
    assert buckets.admit(ADDR, spec).refusal is None
    assert buckets.in_flight(ADDR) == 2


def test_a_refused_request_takes_nothing_and_the_longest_wait_is_answered() -> None:
    clock = ManualClock()
    buckets = TokenBuckets(clock)
    spec = LimitSpec(requests_per_minute=60, tokens_per_minute=60, max_concurrent=1)
    held = buckets.admit(ADDR, spec)
    buckets.settle(ADDR, held, 0)
    held = buckets.admit(ADDR, spec)
    refused = buckets.admit(ADDR, spec)  # the slot is taken
    assert refused.refusal == Refusal(CONCURRENT, 1)
    buckets.settle(ADDR, held, 120)  # 60 - 120 = -60 tokens: a minute to wait
    refused = buckets.admit(ADDR, spec)
    assert refused.refusal == Refusal(TOKENS_PER_MINUTE, 60)
    clock.now += 61
    assert buckets.admit(ADDR, spec).refusal is None
    assert buckets.in_flight(ADDR) == 1


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert [retry_seconds(s) for s in (0.0, 0.001, 1.0, 1.01, 59.2)] == [1, 1, 1, 2, 60]


def test_policy_resolves_callers_over_the_default_key_by_key() -> None:
    policy = LimitPolicy(
        limits(
            {
                "default": {"requestsPerMinute": 10, "tokensPerMinute": 1000},
                "callers": {ADDR.upper().replace("0X", "0x"): {"requestsPerMinute": 600, "maxConcurrent": 0}},
            }
        )
    )
    assert policy.for_caller(ADDR) == LimitSpec(600, 1000, 0)
    assert policy.for_caller(OTHER) == LimitSpec(10, 1000, 0)
    assert policy.anything_limited
    assert not LimitPolicy(limits({})).anything_limited


async def test_memory_gate_claims_the_nonce_then_checks_the_budget() -> None:
    nonces = MemoryNonceStore(ttl=60.0, max_entries=1000)
    gate = MemoryGate(nonces, limits({"default": {"requestsPerMinute": 1}}), ManualClock())
    first = await gate.claim(ADDR, "n1", limited=True)
    assert first is not None and first.refusal is None
    assert await gate.claim(ADDR, "n1", limited=True) is None  # a replay is a replay, budget or not
    refused = await gate.claim(ADDR, "n2", limited=True)
    assert refused is not None and refused.refusal == Refusal(REQUESTS_PER_MINUTE, 60)
    assert await gate.claim(ADDR, "n2", limited=True) is None  # the refused request's nonce was claimed
    assert await gate.claim(ADDR, "n3", limited=False) is NO_LIMITS  # /challenge: no budgets


async def test_unlimited_callers_cost_the_claim_alone() -> None:
    gate = MemoryGate(MemoryNonceStore(ttl=60.0, max_entries=1000), limits({}), ManualClock())
    assert await gate.claim(ADDR, "n", limited=True) is NO_LIMITS
    assert not NO_LIMITS.needs_settle


def test_the_gate_follows_the_nonce_store() -> None:
    memory = create_gate(MemoryNonceStore(ttl=60.0, max_entries=1000), limits({}))
    assert isinstance(memory, MemoryGate)
    redis = create_gate(RedisNonceStore("redis://127.0.0.1:1/0", ttl=60.0), limits({}), slot_lease=90.0)
    assert isinstance(redis, RedisGate)
    assert redis.lease_ms == 90_000
    assert redis.bucket_key(ADDR.upper()) == "fxn:limit:{" + ADDR.upper().lower() + "}"


# --- config check -----------------------------------------------------------------------------------


def _problems(home: Path, text: str) -> list[str]:
    from function_node.errors import ConfigError

    (home / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(home, environ={})
    return [str(p) for p in caught.value.problems]


def test_limits_problems_are_reported_with_their_lines(fxn_home: Path) -> None:
    text = (
        "limits:\n"
        "  default:\n"
        "    requestsPerMinute: -5\n"
        "    tokensPerMinute: 1.5\n"
        '    maxConcurrent: "4"\n'
        "    burst: 3\n"
        "  callers:\n"
        '    "0xnot-an-address": { requestsPerMinute: 5 }\n'
        f"    {ADDR}: {{ requestsPerMinute: 5 }}\n"
        f'    "{OTHER}": {{ requestsPerMinute: 5, tokensPerMin: 1 }}\n'
        "  perCaller: {}\n"
    )
    path = fxn_home / "config.yaml"
    assert _problems(fxn_home, text) == [
        f"{path}:3: limits.default.requestsPerMinute: Input should be greater than or equal to 0 "
        "(change the value to fit the limit)",
        f"{path}:4: limits.default.tokensPerMinute: Input should be a valid integer, got 1.5 "
        "(write a whole number, without quotes)",
        f"{path}:5: limits.default.maxConcurrent: Input should be a valid integer, got '4' "
        "(write a whole number, without quotes)",
        f"{path}:6: unknown key `limits.default.burst` (remove it; the keys here are requestsPerMinute, "
        "tokensPerMinute, maxConcurrent)",
        f"{path}:8: limits.callers.0xnot-an-address: address '0xnot-an-address' is not 0x followed by 40 hex "
        "digits (see docs/configuration.md)",
        f"{path}:9: limits.callers.{int(ADDR, 16)}: {ADDR} is a number to YAML, not an address "
        '(quote the address: "0x...")',
        f"{path}:10: unknown key `limits.callers.{OTHER}.tokensPerMin` (did you mean `tokensPerMinute`?)",
        f"{path}:11: unknown key `limits.perCaller` (did you mean `callers`?)",
    ]


def test_one_address_twice_is_refused(fxn_home: Path) -> None:
    upper = "0x" + ADDR[2:].upper()
    text = yaml.safe_dump({"limits": {"callers": {ADDR: {"maxConcurrent": 1}, upper: {"maxConcurrent": 2}}}})
    (problem,) = _problems(fxn_home, text)
    assert problem.endswith(
        f"limits.callers lists {ADDR} twice (addresses are compared without case) (keep one entry per caller)"
    )


def test_limits_from_the_environment(fxn_home: Path) -> None:
    (fxn_home / "config.yaml").write_text("{}\n")
    settings = load_settings(
        fxn_home,
        environ={
            "FXN_LIMITS_DEFAULT_REQUESTSPERMINUTE": "120",
            "FXN_LIMITS_CALLERS": f'{{"{ADDR}": {{tokensPerMinute: 5000}}}}',
            "FXN_USAGE_RETENTION": "30d",
        },
    )
    assert LimitPolicy(settings.limits).for_caller(ADDR) == LimitSpec(120, 5000, 0)
    assert settings.usage.retention == 30 * 86400


def test_limits_from_the_environment_that_is_not_a_mapping(fxn_home: Path) -> None:
    from function_node.errors import ConfigError

    (fxn_home / "config.yaml").write_text("{}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(fxn_home, environ={"FXN_LIMITS_CALLERS": "everyone"})
    (problem,) = caught.value.problems
    assert problem.file == "environment variable FXN_LIMITS_CALLERS"
    assert problem.message == "limits.callers: Input should be a valid dictionary"
