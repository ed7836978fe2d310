"""Every metric the Grafana dashboard queries is in a real node's ``/metrics``, after real traffic.

A node process serves a signed chat completion, refuses an unsigned request, and answers IDENTITY and
MATRIX_MULTIPLICATION challenges; then its exposition must name each metric the dashboard's queries use
(backend labels may be named anything: the dashboard groups by the label ``backend`` only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from function_node.client import FxnAuth
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.node import NodeProcess, model_doc

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "ops" / "grafana-dashboard.json"
# NVML's gauges are exported only where a GPU is found, which these machines do not have.
GPU_ONLY = frozenset({"fxn_gpu_memory_used_bytes", "fxn_gpu_memory_total_bytes", "fxn_gpu_utilization_ratio"})
_SUFFIX = re.compile(r"_(bucket|sum|count|created)$")


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return {_SUFFIX.sub("", name) for expr in exprs for name in re.findall(r"\bfxn_[a-z_]+", expr)}


def exposed_metrics(text: str) -> set[str]:
    names = set(re.findall(r"^# TYPE (fxn_[a-z_]+) ", text, re.MULTILINE))
    names |= set(re.findall(r"^(fxn_[a-z_]+)[{ ]", text, re.MULTILINE))
    counters = set(re.findall(r"^# TYPE (fxn_[a-z_]+) counter", text, re.MULTILINE))
    names |= {f"{name}_total" for name in counters if not name.endswith("_total")}
    return {_SUFFIX.sub("", name) for name in names}


def test_the_dashboard_queries_only_metrics_a_node_exposes(
    fake_backend: FakeBackend,
    node_factory: Callable[..., NodeProcess],
    gateway_signer: LocalSigner,
    scheduler_signer: LocalSigner,
) -> None:
    node = node_factory(
        models=[model_doc("dev", [fake_backend.url])],
        gateways=[gateway_signer.address],
        schedulers=[scheduler_signer.address],
    )
    chat = orjson.dumps({"model": "dev", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as gateway:
        assert gateway.post(node.url + "/v1/chat/completions", content=chat).status_code == 200
    assert httpx.post(node.url + "/v1/chat/completions", content=chat, timeout=30).status_code == 401
    with httpx.Client(auth=FxnAuth(scheduler_signer), timeout=60) as scheduler:
        for challenge in (
            {"type": "IDENTITY", "payload": {}},
            {"type": "MATRIX_MULTIPLICATION", "payload": {"size": 16, "backend": "cpu"}},
        ):
            assert scheduler.post(node.url + "/challenge", content=orjson.dumps(challenge)).status_code == 200
    exposition = httpx.get(node.url + "/metrics", timeout=10).text
    missing = dashboard_metrics() - exposed_metrics(exposition) - GPU_ONLY
    assert not missing, f"the dashboard queries metrics no node exposes: {sorted(missing)}"
