"""High-s request signatures (EIP-2) are refused as ``bad_signature`` in both schemes, through the real stack,
without burning the nonce: the same request with its low-s signature is then admitted (SPEC §5 step 5)."""

from __future__ import annotations

from typing import Final

import orjson
import pytest

from function_node.client import FxnSigner
from function_node.devnet.process import free_port
from function_node.metrics import NodeMetrics
from function_node.protocol import legacy_message, v2_message
from function_node.signing import LocalSigner, body_sha256
from tests.fixtures.high_s import high_s_twin, recover_ignoring_eip2
from tests.fixtures.node import ProxyClient, backend_config, model_doc
from tests.fixtures.signed import SignedTestClient

PATH: Final = "/v1/models"
HIGH_S_MESSAGE: Final = (
    "the signature is invalid: signature has a high s value (EIP-2); sign with a standard signer"
)


@pytest.fixture
async def client(proxy_client: ProxyClient) -> SignedTestClient:
    # /v1/models is answered by the node itself: the backend is never asked.
    return await proxy_client(backend_config(model_doc("dev", [f"http://127.0.0.1:{free_port()}"])))


def signed_message(headers: dict[str, str], node: str) -> str:
    if "X-Fxn-Auth" in headers:
        return v2_message(node, "GET", PATH, body_sha256(b""), headers["X-Timestamp"], headers["X-Nonce"])
    return legacy_message(body_sha256(b""), headers["X-Timestamp"], headers["X-Nonce"])


def failures(metrics: NodeMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("fxn_auth_failures_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize("scheme", ["legacy", "v2"])
@pytest.mark.parametrize("v_form", ["27/28", "0/1"])
async def test_a_high_s_signature_is_refused_and_the_nonce_stays_free(
    client: SignedTestClient,
    gateway_signer: LocalSigner,
    node_signer: LocalSigner,
    metrics: NodeMetrics,
    scheme: str,
    v_form: str,
) -> None:
    audience = node_signer.address if scheme == "v2" else None
    headers = FxnSigner(gateway_signer).headers("GET", PATH, b"", audience)
    assert ("X-Fxn-Auth" in headers) == (scheme == "v2")
    twin = high_s_twin(headers["X-Signature"])
    if v_form == "0/1":
        twin = twin[:-2] + f"{int(twin[-2:], 16) - 27:02x}"
    # The twin is the caller's real signature of this very request; only EIP-2's rule refuses it.
    assert recover_ignoring_eip2(
        signed_message(headers, node_signer.address), high_s_twin(headers["X-Signature"])
    ) == (gateway_signer.address.lower())

    refused = await client.get(PATH, headers={**headers, "X-Signature": twin}, sign=False)
    error = (await refused.json())["error"]
    assert (refused.status, error["code"], error["message"]) == (401, "bad_signature", HIGH_S_MESSAGE)
    assert "X-Fxn-Node" not in refused.headers  # refused before the signature verified: unsigned
    assert failures(metrics, "bad_signature") == 1.0

    admitted = await client.get(PATH, headers=headers, sign=False)
    raw = await admitted.read()
    assert admitted.status == 200
    assert [m["id"] for m in orjson.loads(raw)["data"]] == ["dev"]
    assert admitted.headers["X-Fxn-Node"] == node_signer.address
    assert failures(metrics, "replayed_nonce") == 0.0

    # The low-s request claimed the nonce (the high-s one had not): now it is a replay.
    replay = await client.get(PATH, headers=headers, sign=False)
    assert (replay.status, (await replay.json())["error"]["code"]) == (401, "replayed_nonce")
    assert failures(metrics, "replayed_nonce") == 1.0
