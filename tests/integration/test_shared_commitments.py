"""Matrix-proof commitments shared through Redis (SPEC §7.2): round two may reach another replica.

Two real ``fxn start`` node processes with the same key share one real redis-server, as replicas behind
a load balancer do. Round one goes to one, round two to the other: before commitments lived in Redis,
the second answered ``commitment_unknown``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from function_node.challenges.matmul.driver import run_matrix_proof
from function_node.client import FxnClientSession
from function_node.devnet.redis_server import RedisServer
from function_node.protocol import NodeReply
from function_node.signing import LocalSigner
from tests.fixtures.node import NodeProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def replicas(
    tmp_path: Path, redis_server: RedisServer, scheduler_signer: LocalSigner
) -> Iterator[Callable[[], tuple[NodeProcess, NodeProcess]]]:
    started: list[NodeProcess] = []

    def start() -> tuple[NodeProcess, NodeProcess]:
        config = {
            "nonceCache": {"backend": "redis", "redisUrl": redis_server.url},
            "challenge": {"matmul": {"maxSize": 512, "maxCpuSize": 512, "proofTtl": "30s"}},
        }
        for i in range(2):
            node = NodeProcess(
                tmp_path / f"replica{i}",
                models=[],
                gateways=[],
                schedulers=[scheduler_signer.address],
                config=config,
            )
            started.append(node.start())
        return started[0], started[1]

    yield start
    for node in started:
        node.stop(10)


async def test_round_two_on_another_replica_is_answered_once(
    replicas: Callable[[], tuple[NodeProcess, NodeProcess]], scheduler_signer: LocalSigner
) -> None:
    a, b = replicas()
    assert a.signer.address == b.signer.address  # one node, two processes
    async with FxnClientSession(scheduler_signer, a.signer.address, strict=True) as fxn:
        sent: list[tuple[str, Any]] = []

        async def send(body: dict[str, Any]) -> NodeReply:
            # Round one to replica A, round two to replica B.
            url = a.url if body["type"] == "MATRIX_MULTIPLICATION" else b.url
            sent.append((url, body))
            return await fxn.exchange("POST", url + "/challenge", body)

        report = await run_matrix_proof(send, 128, prover=a.signer.address, rows=8, backend="cpu")
        assert report.ok, report.failures
        assert [url for url, _ in sent] == [a.url, b.url]
        # The commitment answered once, in all: asking either replica again is refused.
        proof_request = sent[1][1]
        for url in (a.url, b.url):
            again = await fxn.exchange("POST", url + "/challenge", proof_request)
            assert again.signer_problem is None
            assert (again.status, again.body["error"]["code"]) == (400, "commitment_used")


async def test_unknown_commitment_is_refused_by_every_replica(
    replicas: Callable[[], tuple[NodeProcess, NodeProcess]], scheduler_signer: LocalSigner
) -> None:
    a, b = replicas()
    body = {"type": "MATRIX_MULTIPLICATION_PROOF", "payload": {"commitmentId": "cm_nope", "rows": [0]}}
    async with FxnClientSession(scheduler_signer, a.signer.address, strict=True) as fxn:
        for url in (a.url, b.url):
            reply = await fxn.exchange("POST", url + "/challenge", body)
            assert (reply.status, reply.body["error"]["code"]) == (400, "commitment_unknown")
