"""Fixtures of the real-server tier: the tiny model, vLLM and llama.cpp serving it, real nodes in front.

The servers and the node in front of each live for the whole session (vLLM takes ~25 s to start and
~3 GB); tests that stop or stall a server start their own llama.cpp (0.6 s). A server that could not be
installed here makes its tests skip with the reason setup recorded (tests.backends.servers.unavailable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from function_node.client import FxnAuth
from function_node.signing import LocalSigner
from tests.backends.servers import (
    ModelFiles,
    ModelServer,
    generate_models,
    start_llama,
    start_vllm,
    unavailable,
)
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import NodeProcess, model_doc

ALIAS = "alias"  # a node model whose upstreamModel is the server's own name
TIER_TIMEOUT_S = 600
JSON = {
    "Content-Type": "application/json"
}  # the first test of a session waits for vLLM to start under the suite's load


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.backends)
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUT_S))


@dataclass(frozen=True, slots=True)
class Front:
    """A model server and a real node in front of it, serving the server's model under its own name
    (forwarded as the original bytes) and as :data:`ALIAS` (``"model"`` rewritten to the server's)."""

    server: ModelServer
    node: NodeProcess
    gateway: LocalSigner


def front_models(server: ModelServer, **extra: Any) -> list[dict[str, Any]]:
    timeouts = {"connect": "2s", "firstByte": "60s", "total": "120s"}
    return [
        model_doc(server.model, [server.url], timeouts=timeouts, **extra),
        model_doc(ALIAS, [server.url], timeouts=timeouts, upstreamModel=server.model, **extra),
    ]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    reason = unavailable("models")
    if reason:
        pytest.skip(reason)
    return generate_models(tmp_path_factory.mktemp("tiny-model"))


def _server(kind: str, request: pytest.FixtureRequest) -> ModelServer:
    reason = unavailable(kind)
    if reason:
        pytest.skip(reason)
    models: ModelFiles = request.getfixturevalue("tiny_models")
    log_dir = request.getfixturevalue("tmp_path_factory").mktemp(kind)
    return start_vllm(models, log_dir) if kind == "vllm" else start_llama(models, log_dir)


@pytest.fixture(scope="session")
def vllm_server(request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    server = _server("vllm", request)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_server(request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    server = _server("llama", request)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=["vllm", "llama"])
def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """Each server with a node in front (the tests that take it run once per server)."""
    server: ModelServer = request.getfixturevalue(f"{request.param}_server")
    gateway = LocalSigner.from_hex(DEV_KEYS[0])
    node = NodeProcess(
        tmp_path_factory.mktemp(f"front-{request.param}"),
        models=front_models(server),
        gateways=[gateway.address],
        schedulers=[],
    )
    node.start()
    try:
        yield Front(server, node, gateway)
    finally:
        node.stop(10)


@pytest.fixture
def signed(front: Front) -> Iterator[httpx.Client]:
    """httpx signing as the gateway, for the node of ``front``. Bodies are JSON: llama-cpp-python's
    server answers 500 to a body without ``Content-Type: application/json``."""
    with httpx.Client(auth=FxnAuth(front.gateway), timeout=120, headers=JSON) as client:
        yield client


@pytest.fixture
def direct() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120, headers=JSON) as client:
        yield client


def sdk_for(url: str, auth: httpx.Auth | None = None) -> tuple[OpenAI, httpx.Client]:
    http = httpx.Client(auth=auth, timeout=120)
    # This openai release annotates http_client with its vendored httpx fork; httpx.Client is what it
    # accepts at run time (and what FxnAuth plugs into).
    client = OpenAI(base_url=url + "/v1", api_key="-", http_client=http, max_retries=0)  # type: ignore[arg-type]
    return client, http


@pytest.fixture
def sdks(front: Front) -> Iterator[tuple[OpenAI, OpenAI]]:
    """The official SDK twice: through the node (signing) and straight to the server."""
    through, http_a = sdk_for(front.node.url, FxnAuth(front.gateway))
    straight, http_b = sdk_for(front.server.url)
    try:
        yield through, straight
    finally:
        http_a.close()
        http_b.close()


@pytest.fixture
def extra_llama(tiny_models: ModelFiles, tmp_path: Path) -> Iterator[Callable[[], ModelServer]]:
    """Start llama.cpp servers of the test's own (to stop or stall them); all stopped after."""
    reason = unavailable("llama")
    if reason:
        pytest.skip(reason)
    started: list[ModelServer] = []

    def make() -> ModelServer:
        server = start_llama(tiny_models, tmp_path, name=f"llama{len(started)}")
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
