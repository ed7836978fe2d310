"""OpenTelemetry tracing through a real ``fxn start`` node (SPEC §10, the optional ``otel`` extra).

The collector is a real OTLP/HTTP endpoint started by the test: an aiohttp server decoding each export
with the official protobuf definitions (``opentelemetry-proto``). The node's spans must form one trace
per request, joined to the caller's ``traceparent``, and the backend must receive the ``traceparent`` of
the node's upstream span.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from function_node.client import FxnAuth
from function_node.devnet.process import free_port
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.node import NodeProcess, model_doc

pytest.importorskip("opentelemetry.proto", reason="the otel extra (opentelemetry-proto) is not installed")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

pytestmark = pytest.mark.integration

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CHAT = b'{"model":"dev","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    service: str


@dataclass
class Collector:
    """An OTLP/HTTP traces endpoint on its own thread's loop; ``spans`` holds what it was sent."""

    port: int = field(default_factory=free_port)
    spans: list[Span] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def receive(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"),
                "",
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append(
                        Span(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                            service,
                        )
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")

    def serve(self) -> Iterator[Collector]:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/traces", self.receive)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    yield from Collector().serve()


def test_one_trace_per_request_joined_to_the_caller_and_propagated_to_the_backend(
    collector: Collector,
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
) -> None:
    node = node_factory(
        models=[model_doc("dev", [fake_backend.url])],
        gateways=[gateway_signer.address],
        schedulers=[],
        config={"tracing": {"otlpEndpoint": collector.url, "serviceName": "node-under-test"}},
    )
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    with httpx.Client(auth=FxnAuth(gateway_signer, node_address=node.signer.address), timeout=30) as http:
        resp = http.post(
            node.url + "/v1/chat/completions", content=CHAT, headers={"traceparent": traceparent}
        )
    assert resp.status_code == 200
    assert node.stop() == 0  # a drained stop flushes the last batch of spans
    spans = {s.name: s for s in collector.spans if s.trace_id == CALLER_TRACE}
    assert set(spans) >= {"POST /v1/chat/completions", "auth", "auth.nonce", "backend.choose", "upstream"}
    server = spans["POST /v1/chat/completions"]
    assert server.parent_id == CALLER_SPAN  # joined to the caller's trace
    assert server.service == "node-under-test"
    assert server.attributes["http.response.status_code"] == 200
    for child in ("auth", "auth.nonce", "backend.choose", "upstream"):
        assert spans[child].parent_id == server.span_id
    assert spans["upstream"].attributes["fxn.backend"] == "dev/0"
    (seen,) = fake_backend.requests_for("dev")
    sent = seen.headers["traceparent"].split("-")
    assert (sent[1], sent[2]) == (CALLER_TRACE, spans["upstream"].span_id)  # the backend joins the trace
    assert set(collector.content_types) == {"application/x-protobuf"}


def test_a_request_without_traceparent_starts_its_own_trace(
    collector: Collector,
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
) -> None:
    node = node_factory(
        models=[model_doc("dev", [fake_backend.url])],
        gateways=[gateway_signer.address],
        schedulers=[],
        config={"tracing": {"otlpEndpoint": collector.url + "/v1/traces"}},
    )
    with httpx.Client(auth=FxnAuth(gateway_signer, node_address=node.signer.address), timeout=30) as http:
        assert http.post(node.url + "/v1/chat/completions", content=CHAT).status_code == 200
        assert http.get(node.url + "/health").status_code == 200
    assert node.stop() == 0
    servers = [s for s in collector.spans if s.name == "POST /v1/chat/completions"]
    assert len(servers) == 1 and servers[0].parent_id == ""
    (seen,) = fake_backend.requests_for("dev")
    assert seen.headers["traceparent"].split("-")[1] == servers[0].trace_id
    assert [s.service for s in servers] == ["function-node"]


def test_no_endpoint_means_no_traceparent_of_the_nodes_own(
    fake_backend: FakeBackend, node_factory: Callable[..., NodeProcess], gateway_signer: LocalSigner
) -> None:
    node = node_factory(
        models=[model_doc("dev", [fake_backend.url])], gateways=[gateway_signer.address], schedulers=[]
    )
    with httpx.Client(auth=FxnAuth(gateway_signer, node_address=node.signer.address), timeout=30) as http:
        assert http.post(node.url + "/v1/chat/completions", content=CHAT).status_code == 200
    (seen,) = fake_backend.requests_for("dev")
    assert "traceparent" not in {k.lower() for k in seen.headers}
