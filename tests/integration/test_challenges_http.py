"""/challenge over HTTP: the real auth middleware in front of the real handler and challenge registry,
then a real ``fxn start`` node process challenged by the real ``fxn challenge`` command."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from function_node.challenges.base import ChallengeContext
from function_node.challenges.matmul.driver import run_matrix_proof
from function_node.challenges.registry import default_challenges
from function_node.client import FxnClientSession
from function_node.config.backends import BackendConfig
from function_node.config.settings import Settings
from function_node.keys import write_plaintext
from function_node.metrics import NodeMetrics
from function_node.node.app import node_application
from function_node.node.challenge import CHALLENGE_CONTEXT, CHALLENGES, challenge_handler
from function_node.protocol import NodeReply, identity_message
from function_node.signing import LocalSigner, recover_address
from tests.fixtures.auth import make_context
from tests.fixtures.node import FXN, NodeProcess

Send = Callable[[dict[str, Any]], Any]
LIMITS = {"matmul": {"maxSize": 512, "maxCpuSize": 256, "maxExplicitSize": 8, "maxPendingProofs": 2}}


@pytest.fixture
async def node_url(
    node_signer: LocalSigner, gateway_signer: LocalSigner, scheduler_signer: LocalSigner, metrics: NodeMetrics
) -> AsyncIterator[str]:
    settings = Settings.model_validate({"challenge": LIMITS})
    ctx = make_context(
        node_signer,
        metrics,
        gateways=[gateway_signer.address],
        schedulers=[scheduler_signer.address],
        settings=settings,
    )
    app = node_application(settings, metrics)
    app.router.add_post("/challenge", challenge_handler)
    registry = default_challenges(settings)
    session = aiohttp.ClientSession()
    app[CHALLENGES] = registry
    app[CHALLENGE_CONTEXT] = ChallengeContext(
        settings=settings,
        signer=node_signer,
        backends=BackendConfig,
        http=session,
        metrics=metrics,
        home=Path("/nonexistent"),
        version="0.1.0-test",
    )
    from function_node.node.context import CONTEXT

    app[CONTEXT] = ctx
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()
    await registry.close()
    await session.close()
    await ctx.nonces.close()


def _sender(client: FxnClientSession, url: str) -> Callable[[dict[str, Any]], Any]:
    """(status, JSON) of a challenge; every answer must be signed by the node (the client checks)."""

    async def send(body: dict[str, Any]) -> tuple[int, Any]:
        reply = await client.exchange("POST", url + "/challenge", body)
        assert reply.signer_problem is None, reply.signer_problem
        return reply.status, reply.body

    return send


@pytest.fixture
async def client(
    node_url: str, scheduler_signer: LocalSigner, node_signer: LocalSigner
) -> AsyncIterator[FxnClientSession]:
    async with FxnClientSession(scheduler_signer, node_signer.address, strict=True) as fxn:
        yield fxn


@pytest.fixture
def scheduler(client: FxnClientSession, node_url: str) -> Callable[[dict[str, Any]], Any]:
    return _sender(client, node_url)


async def test_full_two_round_proof_over_http(
    client: FxnClientSession, node_url: str, node_signer: LocalSigner, metrics: NodeMetrics
) -> None:
    async def send(body: dict[str, Any]) -> NodeReply:
        return await client.exchange("POST", node_url + "/challenge", body)

    report = await run_matrix_proof(send, 200, prover=node_signer.address, rows=16, backend="cpu")
    assert report.ok, report.failures
    assert len(report.rows) == 16
    assert report.commitment["backend"] == "cpu"
    assert report.implied_tops > 0
    sample = metrics.registry.get_sample_value
    assert sample("fxn_challenges_total", {"type": "MATRIX_MULTIPLICATION", "outcome": "ok"}) == 1
    assert sample("fxn_challenges_total", {"type": "MATRIX_MULTIPLICATION_PROOF", "outcome": "ok"}) == 1
    assert sample("fxn_challenge_duration_seconds_count", {"type": "MATRIX_MULTIPLICATION"}) == 1


async def test_reused_commitment_is_refused_over_http(scheduler: Send, metrics: NodeMetrics) -> None:
    status, answer = await scheduler({"type": "MATRIX_MULTIPLICATION", "payload": {"size": 16}})
    assert status == 200
    proof = {
        "type": "MATRIX_MULTIPLICATION_PROOF",
        "payload": {"commitmentId": answer["commitmentId"], "rows": [0]},
    }
    assert (await scheduler(proof))[0] == 200
    status, body = await scheduler(proof)
    assert status == 400
    assert body["error"]["code"] == "commitment_used"
    assert body["error"]["type"] == "invalid_request_error"
    sample = metrics.registry.get_sample_value
    assert sample("fxn_challenges_total", {"type": "MATRIX_MULTIPLICATION_PROOF", "outcome": "refused"}) == 1


async def test_identity_over_http(scheduler: Send, node_signer: LocalSigner) -> None:
    status, answer = await scheduler({"type": "IDENTITY", "payload": {"nonce": "abc"}})
    assert status == 200
    assert answer["address"] == node_signer.address
    message = identity_message(answer["address"], answer["ipAddress"], "abc")
    assert recover_address(message, answer["signature"]) == node_signer.address.lower()


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            {"type": "NOPE", "payload": {}},
            400,
            "unknown_challenge_type",
            "unknown challenge type 'NOPE'; known types: ENDPOINT_REACHABLE, IDENTITY, "
            "MATRIX_MULTIPLICATION, MATRIX_MULTIPLICATION_PROOF",
        ),
        ({"payload": {}}, 400, "invalid_challenge", 'the body must be {"type": "<TYPE>", "payload": ...}'),
        (
            {"type": "MATRIX_MULTIPLICATION", "payload": {"size": 257}},
            400,
            "size_too_large",
            "size 257 exceeds maxCpuSize=256 for the CPU backend",
        ),
        (
            {"type": "MATRIX_MULTIPLICATION", "payload": {"size": 513}},
            400,
            "size_too_large",
            "size 513 exceeds maxSize=512",
        ),
        (
            {"type": "MATRIX_MULTIPLICATION", "payload": {"A": [[1] * 9], "B": [[1]] * 9}},
            400,
            "matrix_too_large",
            "matrix A has 9 columns; the limit is maxExplicitSize=8",
        ),
        (  # overflows float64: used to be 200 with "C": [[null]]
            {"type": "MATRIX_MULTIPLICATION", "payload": {"A": [[1e200, 1]], "B": [[1e200], [1]]}},
            400,
            "non_finite_result",
            "the product A·B overflows float64 (an entry is infinite or not a number); send smaller values",
        ),
        (
            {"type": "ENDPOINT_REACHABLE", "payload": "http://169.254.169.254/"},
            400,
            "endpoint_not_allowed",
            "URL refused: it is neither a configured backend nor under challenge.endpointAllowlist",
        ),
    ],
)
async def test_refusals_over_http(
    scheduler: Send, body: dict[str, Any], status: int, code: str, message: str
) -> None:
    got_status, answer = await scheduler(body)
    assert got_status == status
    assert answer == {"error": {"message": message, "type": "invalid_request_error", "code": code}}


async def test_invalid_json_body(
    node_url: str, scheduler_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    async with (
        FxnClientSession(scheduler_signer, node_signer.address, strict=True) as fxn,
        await fxn.request("POST", node_url + "/challenge", data=b"{not json") as answer,
    ):
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] == "invalid_json"  # read(): signed by the node


async def test_too_many_pending_proofs_is_429_over_http(scheduler: Send) -> None:
    for _ in range(2):
        assert (await scheduler({"type": "MATRIX_MULTIPLICATION", "payload": {"size": 8}}))[0] == 200
    status, answer = await scheduler({"type": "MATRIX_MULTIPLICATION", "payload": {"size": 8}})
    assert status == 429
    assert answer["error"]["code"] == "too_many_pending_proofs"


async def test_gateway_is_refused_403(
    node_url: str, gateway_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    async with FxnClientSession(gateway_signer, node_signer.address) as fxn:
        status, answer = await _sender(fxn, node_url)({"type": "IDENTITY", "payload": {}})
    assert status == 403
    assert answer["error"]["code"] == "forbidden_route"


# --- a real node process and the real CLI ------------------------------------------------------------


@pytest.mark.integration
def test_fxn_challenge_against_a_real_node(
    node_factory: Callable[..., NodeProcess], scheduler_signer: LocalSigner, tmp_path: Path
) -> None:
    node = node_factory(models=[], gateways=[], schedulers=[scheduler_signer.address])
    key = tmp_path / "scheduler.json"
    write_plaintext(key, scheduler_signer)
    home = ["--home", str(tmp_path / "cli-home")]
    common = ["--node", node.url, "--key", str(key)]
    done = subprocess.run(
        [
            FXN,
            *home,
            "challenge",
            "MATRIX_MULTIPLICATION",
            '{"size": 256, "backend": "cpu"}',
            *common,
            "--rows",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout
    done = subprocess.run(
        [FXN, *home, "challenge", "IDENTITY", *common],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"VERIFIED: IDENTITY signed by {node.signer.address}" in done.stdout
    done = subprocess.run(
        [FXN, *home, "challenge", "MATRIX_MULTIPLICATION", '{"size": 999999}', *common],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "round one refused: HTTP 400: size 999999 exceeds maxSize=16384" in done.stdout
    assert "FAILED (refused)" in done.stdout
