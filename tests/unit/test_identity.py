"""IDENTITY: the answer's fields, its signature, the IP address rules and the GPU metrics."""

from __future__ import annotations

from typing import Any

import pytest

from function_node.challenges.identity import IdentityChallenge, discover_ip
from function_node.errors import ChallengeError
from function_node.protocol import identity_message
from function_node.signing import recover_address
from tests.fixtures.challenges import ContextFactory

FIELDS = {
    "address",
    "publicKey",
    "publicKeyHex",
    "ipAddress",
    "nonce",
    "signature",
    "gpuStats",
    "system",
    "version",
}


def _gpus() -> list[dict[str, Any]]:
    return [
        {
            "name": "NVIDIA H100 80GB HBM3",
            "vram_total_mb": 81559,
            "vram_used_mb": 1024,
            "utilization_gpu_pct": 37.0,
            "source": "nvml",
            "ld_preload": False,
        },
        {"name": "other", "vram_total_mb": 1, "source": "nvidia-smi", "ld_preload": False},
    ]


async def test_identity_answer_is_signed_over_address_ip_and_nonce(
    challenge_ctx_factory: ContextFactory,
) -> None:
    ctx = challenge_ctx_factory({"node": {"publicAddress": "203.0.113.7"}})
    challenge = IdentityChallenge(gpu_stats=_gpus, discover=lambda: "10.9.9.9")
    answer = await challenge.run({"nonce": "n-123"}, ctx)
    assert set(answer) == FIELDS
    assert answer["address"] == answer["publicKey"] == ctx.signer.address
    assert answer["publicKeyHex"] == ctx.signer.public_key_hex
    assert answer["ipAddress"] == "203.0.113.7"  # configured: discovery not used
    assert answer["nonce"] == "n-123"
    assert answer["version"] == "0.1.0-test"
    message = identity_message(answer["address"], "203.0.113.7", "n-123")
    assert message == f"{ctx.signer.address}.203.0.113.7.n-123"
    assert recover_address(message, answer["signature"]) == ctx.signer.address.lower()
    assert recover_address(
        identity_message(answer["address"], "203.0.113.7", "other"), answer["signature"]
    ) != (ctx.signer.address.lower())
    assert answer["gpuStats"] == _gpus()
    assert {"os", "cpuCount", "memoryGB", "ldPreload"} <= set(answer["system"])


async def test_identity_discovers_ip_and_draws_a_nonce(challenge_ctx_factory: ContextFactory) -> None:
    ctx = challenge_ctx_factory()
    answer = await IdentityChallenge(gpu_stats=list, discover=lambda: "10.9.9.9").run({}, ctx)
    assert answer["ipAddress"] == "10.9.9.9"
    assert len(answer["nonce"]) == 32
    assert answer["gpuStats"] == []
    message = identity_message(answer["address"], "10.9.9.9", answer["nonce"])
    assert recover_address(message, answer["signature"]) == ctx.signer.address.lower()
    none_payload = await IdentityChallenge(gpu_stats=list, discover=lambda: "").run(None, ctx)
    assert none_payload["ipAddress"] == ""


async def test_identity_exports_nvml_figures_only(challenge_ctx_factory: ContextFactory) -> None:
    ctx = challenge_ctx_factory()
    await IdentityChallenge(gpu_stats=_gpus, discover=lambda: "").run({}, ctx)
    labels = {"gpu": "0", "name": "NVIDIA H100 80GB HBM3"}
    sample = ctx.metrics.registry.get_sample_value
    assert sample("fxn_gpu_memory_total_bytes", labels) == 81559 * (1 << 20)
    assert sample("fxn_gpu_memory_used_bytes", labels) == 1024 * (1 << 20)
    assert sample("fxn_gpu_utilization_ratio", labels) == pytest.approx(0.37)
    assert sample("fxn_gpu_memory_total_bytes", {"gpu": "1", "name": "other"}) is None


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        ("nonce", "invalid_payload", 'IDENTITY payload must be {} or {"nonce": "<string>"}'),
        ({"nonce": 5}, "invalid_nonce", "nonce must be a string of 1 to 256 characters"),
        ({"nonce": ""}, "invalid_nonce", "nonce must be a string of 1 to 256 characters"),
        ({"nonce": "x" * 257}, "invalid_nonce", "nonce must be a string of 1 to 256 characters"),
    ],
)
async def test_identity_refusals(
    challenge_ctx_factory: ContextFactory, payload: Any, code: str, message: str
) -> None:
    with pytest.raises(ChallengeError) as info:
        await IdentityChallenge(gpu_stats=list, discover=lambda: "").run(payload, challenge_ctx_factory())
    assert (info.value.status, info.value.code, str(info.value)) == (400, code, message)


def test_discovery_returns_a_local_address_or_empty() -> None:
    # No packet leaves: connecting a UDP socket only selects a route. Loopback always has one.
    assert discover_ip(("127.0.0.1", 9)) == "127.0.0.1"
    assert discover_ip(("::1", 9)) == ""  # an IPv6 literal on an IPv4 socket fails (no DNS): ""
