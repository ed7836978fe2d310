"""A relay node cannot pass another node's work off as its own (SPEC §5 Audience, §7.2, §9).

The relay (tests/fixtures/relay.py) is a small aiohttp server without a GPU that forwards ``/challenge`` and
``/v1/*`` to a real ``fxn start`` node and names its OWN address (another development key) in ``/health``,
as a provider registered under that address would. Against it: ``fxn challenge``, the scheduler and the
client library all get no accepted answer. The same checks straight against the real node pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import aiohttp
import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from function_node.challenges.matmul.driver import REASON_PROOF_INVALID, run_matrix_proof
from function_node.client import FxnAuth, FxnClientSession, FxnSigner, NodeIdentityError
from function_node.keys import write_plaintext
from function_node.protocol import NodeReply
from function_node.scheduler.checks import CHECKS
from function_node.scheduler.config import SchedulerConfig
from function_node.scheduler.metrics import SchedulerMetrics
from function_node.scheduler.runner import RoundReport, Scheduler
from function_node.scheduler.store import SchedulerStore
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import FxnCli
from tests.fixtures.node import NodeProcess, model_doc
from tests.fixtures.relay import RelayNode

pytestmark = pytest.mark.integration

RELAY: Final = LocalSigner.from_hex(DEV_KEYS[3]).address  # the relay's own (registered) address
MODEL: Final = "dev-chat"
CHAT: Final = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
MATRIX: Final = '{"size": 128, "backend": "cpu"}'


@pytest.fixture
def node(
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
    scheduler_signer: LocalSigner,
) -> NodeProcess:
    """A real node (the development node key, DEV_KEYS[2]) that knows the gateway and the scheduler."""
    return node_factory(
        models=[model_doc(MODEL, [fake_backend.url])],
        gateways=[gateway_signer.address],
        schedulers=[scheduler_signer.address],
    )


@pytest.fixture
def relay(node: NodeProcess) -> Iterator[RelayNode]:
    relay = RelayNode(node.url, claims=RELAY).start()
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture
def scheduler_key(tmp_path: Path, scheduler_signer: LocalSigner) -> Path:
    path = tmp_path / "scheduler.json"
    write_plaintext(path, scheduler_signer)
    return path


def refused_before_verification(expected: str) -> str:
    """What a check says of the real node's unsigned refusal of a request signed for ``expected``."""
    return f"HTTP 401 bad_signature: the answer names node '(none)', expected {expected.lower()}"


# -- fxn challenge ------------------------------------------------------------------------------------


def test_fxn_challenge_through_the_relay_fails_wrong_signer(
    fxn_cli: FxnCli, relay: RelayNode, scheduler_key: Path
) -> None:
    common = ("--node", relay.url, "--key", str(scheduler_key))
    env = {"COLUMNS": "300"}
    trusted = fxn_cli("challenge", "MATRIX_MULTIPLICATION", MATRIX, *common, "--rows", "8", env=env)
    pinned = fxn_cli(
        "challenge", "MATRIX_MULTIPLICATION", MATRIX, *common, "--rows", "8", "--node-address", RELAY, env=env
    )
    for result in (trusted, pinned):
        assert result.code == 1, result.stdout + result.stderr
        assert "FAILED (wrong_signer)" in result.stdout
        assert f"✗ round one: {refused_before_verification(RELAY)}" in result.stdout
        assert "VERIFIED" not in result.stdout
    assert f"trusting node {RELAY.lower()} (from its /health) on first use" in trusted.stderr
    assert "trusting node" not in pinned.stderr
    identity = fxn_cli("challenge", "IDENTITY", *common, "--node-address", RELAY)
    assert identity.code == 1
    assert identity.stderr.strip() == (
        f"FAILED (wrong_signer): the answer names node '(none)', expected {RELAY.lower()}"
    )
    # Every challenge did reach the real node, through the relay: the refusals are the real node's.
    assert relay.seen == ["POST /challenge"] * 3


def test_fxn_challenge_straight_against_the_node_passes(
    fxn_cli: FxnCli, node: NodeProcess, scheduler_key: Path
) -> None:
    common = ("--node", node.url, "--key", str(scheduler_key))
    for pin in ((), ("--node-address", node.signer.address)):
        result = fxn_cli("challenge", "MATRIX_MULTIPLICATION", MATRIX, *common, "--rows", "8", *pin)
        assert result.code == 0, result.stdout + result.stderr
        assert "VERIFIED" in result.stdout
    identity = fxn_cli("challenge", "IDENTITY", *common, "--node-address", node.signer.address)
    assert identity.code == 0, identity.stderr
    assert f"VERIFIED: IDENTITY signed by {node.signer.address}" in identity.stdout
    # Pinning the relay's address to the real node: /health contradicts it and nothing is sent.
    wrong = fxn_cli("challenge", "IDENTITY", *common, "--node-address", RELAY)
    assert wrong.code == 1
    assert "nothing was sent" in wrong.stderr and f"but {RELAY.lower()} is expected there" in wrong.stderr


# -- the binding itself: a relayed root is worthless even to a verifier that ignored signatures ---------


async def test_a_relayed_proof_fails_twice_signer_and_rows(
    relay: RelayNode, node: NodeProcess, scheduler_signer: LocalSigner
) -> None:
    """A legacy-signed challenge is admitted by the real node (legacy binds no audience), so the relay
    gets real answers back. They are signed by the real node (``wrong_signer``); and were signatures not
    checked, the rows recomputed with the relay's keys would not match the real node's root."""
    url = relay.url + "/challenge"

    async def run(verify: bool) -> tuple[str, list[str]]:
        async with FxnClientSession(scheduler_signer, RELAY, legacy=True, strict=True, verify=verify) as fxn:

            async def send(body: dict[str, object]) -> NodeReply:
                return await fxn.exchange("POST", url, body)

            report = await run_matrix_proof(send, 64, prover=RELAY, rows=8, backend="cpu")
        assert report.commitment.get("prover") == node.signer.address  # the real node did the work
        return report.reason, report.failures

    reason, failures = await run(verify=True)
    assert reason == "wrong_signer"
    assert failures == [
        f"round one: HTTP 200: the answer names node '{node.signer.address}', expected {RELAY.lower()}"
    ]
    reason, failures = await run(verify=False)
    assert reason == REASON_PROOF_INVALID
    assert len(failures) == 8  # every checked row differs from the one recomputed for the relay
    assert all("differs from the recomputed" in f for f in failures), failures


# -- the scheduler --------------------------------------------------------------------------------------


async def one_round(config: SchedulerConfig, signer: LocalSigner) -> RoundReport:
    with SchedulerStore(config.database_path) as store:
        async with aiohttp.ClientSession() as session:
            scheduler = Scheduler(
                config,
                signer=FxnSigner(signer),
                store=store,
                metrics=SchedulerMetrics(CollectorRegistry()),
                session=session,
            )
            return await scheduler.run_round()


async def test_the_scheduler_records_wrong_signer_for_the_relay_and_passes_the_node(
    tmp_path: Path, relay: RelayNode, node: NodeProcess, scheduler_signer: LocalSigner, fxn_cli: FxnCli
) -> None:
    nodes = [{"url": relay.url, "address": RELAY}, {"url": node.url, "address": node.signer.address}]
    config = SchedulerConfig.model_validate(
        {"nodes": nodes, "matmul": {"size": 128, "rows": 16}, "inference": {"maxTokens": 4}}
    ).with_base_dir(tmp_path)
    report = await one_round(config, scheduler_signer)
    by_url = {p.node_url: {r.check: (r.ok, r.reason) for r in p.results} for p in report.nodes}
    assert by_url[relay.url] == {
        "reachable": (True, ""),  # /health answers, with the address the registry names
        "identity": (False, "wrong_signer"),
        "endpoint": (False, "skipped"),
        "matmul": (False, "skipped"),
        "inference": (False, "skipped"),
    }
    assert by_url[node.url] == {check: (True, "") for check in CHECKS}
    assert relay.seen == ["POST /challenge"]  # IDENTITY only: no further checks that round

    with SchedulerStore(config.database_path) as store:
        stored = {(r.check, r.ok, r.reason, r.detail) for r in store.results(node_url=relay.url)}
    assert ("identity", False, "wrong_signer", refused_before_verification(RELAY)) in stored
    assert ("matmul", False, "skipped", "IDENTITY failed (wrong_signer)") in stored

    status = fxn_cli("scheduler", "status", "--database", str(config.database_path), env={"COLUMNS": "400"})
    assert status.code == 1  # a node failed its last round
    [row] = [line for line in status.stdout.splitlines() if relay.url in line]
    assert "identity=wrong_signer, endpoint=skipped, matmul=skipped, inference=skipped" in row
    assert "reachable:ok identity:FAIL" in row
    [honest] = [line for line in status.stdout.splitlines() if node.url in line]
    assert node.signer.address.lower() in honest and "- (0/1 rounds failed)" in honest


# -- the client library ---------------------------------------------------------------------------------


def test_fxnauth_pinned_to_the_relay_gets_no_accepted_answer(
    relay: RelayNode, node: NodeProcess, gateway_signer: LocalSigner
) -> None:
    body = orjson.dumps(CHAT)
    with httpx.Client(auth=FxnAuth(gateway_signer, node_address=RELAY), timeout=30) as http:
        for request in (body, orjson.dumps({**CHAT, "stream": True})):
            resp = http.post(relay.url + "/v1/chat/completions", content=request)
            # Signed v2 for the relay: the real node refuses it before it knows who asks, unsigned.
            assert (resp.status_code, resp.json()["error"]["code"]) == (401, "bad_signature")
            assert "X-Fxn-Node" not in resp.headers
    # Straight against the real node, with its own address: accepted and verified.
    with httpx.Client(auth=FxnAuth(gateway_signer, node_address=node.signer.address), timeout=30) as http:
        resp = http.post(node.url + "/v1/chat/completions", content=body)
    assert resp.status_code == 200
    assert resp.headers["X-Fxn-Node"] == node.signer.address
    assert relay.seen == ["POST /v1/chat/completions"] * 2


async def test_a_legacy_request_relayed_and_answered_by_the_node_fails_the_check(
    relay: RelayNode, node: NodeProcess, gateway_signer: LocalSigner
) -> None:
    url = relay.url + "/v1/chat/completions"
    async with FxnClientSession(gateway_signer, RELAY, legacy=True) as fxn:
        async with await fxn.request("POST", url, json=CHAT) as answer:
            assert answer.status == 200  # the real node admitted the legacy signature and answered
            with pytest.raises(NodeIdentityError) as plain:
                await answer.read()
        async with await fxn.request("POST", url, json={**CHAT, "stream": True}) as answer:
            assert (answer.status, answer.content_type) == (200, "text/event-stream")
            chunks: list[bytes] = []
            with pytest.raises(NodeIdentityError) as streamed:
                async for chunk in answer.iter_chunks():
                    chunks.append(chunk)
    assert str(plain.value) == f"the answer names node '{node.signer.address}', expected {RELAY.lower()}"
    assert str(streamed.value) == f"the stream's signature line is not {RELAY.lower()}'s"
    assert b"data: [DONE]\n\n: fxn-signature 0x" in b"".join(chunks)  # a whole, validly signed stream
    # The honest path: the same legacy requests straight to the node, pinned to its address.
    async with FxnClientSession(gateway_signer, node.signer.address, legacy=True) as fxn:
        async with await fxn.request("POST", node.url + "/v1/chat/completions", json=CHAT) as answer:
            assert orjson.loads(await answer.read())["object"] == "chat.completion"
        stream_url = node.url + "/v1/chat/completions"
        async with await fxn.request("POST", stream_url, json={**CHAT, "stream": True}) as answer:
            raw = b"".join([chunk async for chunk in answer.iter_chunks()])
    assert raw.endswith(b"\n\n") and b"data: [DONE]\n\n: fxn-signature 0x" in raw
