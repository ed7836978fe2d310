"""The scheduler against real nodes: every check passes on an honest node (a real ``fxn start`` process in
front of the development backend), and a node with a tampered matrix backend is flagged.

The tampered node runs in-process (``create_app``) so that a test-only subclass of the CPU backend can be
put in place of the real one after start-up: nothing in the shipped node can select it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from function_node.challenges.matmul.compute import MatmulResult, NumpyBackend
from function_node.challenges.matmul.driver import REASON_PROOF_INVALID
from function_node.challenges.matmul.generate import MatrixKeys
from function_node.client import FxnSigner
from function_node.config.backends import BackendConfig
from function_node.config.settings import Settings
from function_node.devnet.process import ManagedProcess, free_port
from function_node.node.app import create_app
from function_node.node.challenge import CHALLENGES
from function_node.scheduler.checks import CHECKS, REASON_UNEXPECTED_ADDRESS
from function_node.scheduler.config import SchedulerConfig
from function_node.scheduler.metrics import SchedulerMetrics
from function_node.scheduler.runner import RoundReport, Scheduler
from function_node.scheduler.store import SchedulerStore
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.node import NodeProcess

pytestmark = pytest.mark.integration

MODEL = "dev-model"


class SkipsRowsCpuBackendForTests(NumpyBackend):
    """TEST ONLY: a lazy node that computes the first eighth of C's rows and makes up the rest."""

    def compute(self, n: int, keys: MatrixKeys) -> MatmulResult:
        honest = NumpyBackend.compute(self, n, keys)
        digests = honest.digests.copy()
        rng = np.random.default_rng(7)
        digests[n // 8 :] = rng.integers(0, 2**63, size=n - n // 8, dtype=np.uint64)
        return MatmulResult(
            digests, honest.samples, honest.gemm_seconds / 8, honest.total_seconds, honest.phases
        )


@pytest.fixture
def dev_backend(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "function_node.devnet.dev_backend", "--port", str(port), "--model", MODEL]
    with ManagedProcess("dev-backend", argv, tmp_path / "backend.log", port=port):
        yield f"http://127.0.0.1:{port}"


def scheduler_config(tmp_path: Path, nodes: list[dict[str, str]], size: int = 128) -> SchedulerConfig:
    config = SchedulerConfig.model_validate(
        {
            "nodes": nodes,
            "interval": "1s",
            "matmul": {"size": size, "rows": 16},
            "inference": {"maxTokens": 8},
        }
    )
    return config.with_base_dir(tmp_path)


async def one_round(config: SchedulerConfig, signer: LocalSigner, registry: CollectorRegistry) -> RoundReport:
    with SchedulerStore(config.database_path) as store:
        async with aiohttp.ClientSession() as session:
            scheduler = Scheduler(
                config,
                signer=FxnSigner(signer),
                store=store,
                metrics=SchedulerMetrics(registry),
                session=session,
            )
            return await scheduler.run_round()


def verdicts(report: RoundReport) -> dict[str, tuple[bool, str]]:
    [node] = report.nodes
    return {r.check: (r.ok, r.reason) for r in node.results}


async def test_honest_node_passes_every_check(
    tmp_path: Path, dev_backend: str, scheduler_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    node = NodeProcess(
        tmp_path / "node",
        models=[{"name": MODEL, "backends": [{"url": dev_backend}]}],
        gateways=[],
        schedulers=[scheduler_signer.address],
    ).start()
    try:
        registry = CollectorRegistry()
        config = scheduler_config(tmp_path, [{"url": node.url, "address": node_signer.address}])
        report = await one_round(config, scheduler_signer, registry)
    finally:
        node.stop(5)
    assert verdicts(report) == {c: (True, "") for c in CHECKS}, report
    [probe] = report.nodes
    assert probe.address == node_signer.address.lower()
    matmul = next(r for r in probe.results if r.check == "matmul")
    assert matmul.values["tops"] > 0 and matmul.values["n"] == 128
    inference = next(r for r in probe.results if r.check == "inference")
    assert inference.values["tokens"] >= 1
    assert registry.get_sample_value("fxn_scheduler_node_up", {"node": node.url}) == 1.0
    assert (
        registry.get_sample_value(
            "fxn_scheduler_checks_total", {"check": "matmul", "outcome": "pass", "reason": ""}
        )
        == 1.0
    )
    with SchedulerStore(config.database_path) as store:  # what `fxn scheduler status` will read
        [summary] = store.summaries()
        assert summary.passed and summary.node_address == node_signer.address.lower()


@pytest.fixture
async def tampered_node(
    tmp_path: Path, scheduler_signer: LocalSigner, node_signer: LocalSigner
) -> AsyncIterator[str]:
    """An in-process node whose CPU matrix backend is SkipsRowsCpuBackendForTests."""
    from function_node.devnet.dev_backend import create_dev_backend_app

    backend_runner = web.AppRunner(create_dev_backend_app(models=(MODEL,)))
    await backend_runner.setup()
    backend_port = free_port()
    await web.TCPSite(backend_runner, "127.0.0.1", backend_port).start()
    settings = Settings.model_validate({"registry": {"static": {"schedulers": [scheduler_signer.address]}}})
    backends = BackendConfig.model_validate(
        {"models": [{"name": MODEL, "backends": [{"url": f"http://127.0.0.1:{backend_port}"}]}]}
    )
    app = create_app(settings, backends, node_signer, tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    service: Any = app[CHALLENGES].get("MATRIX_MULTIPLICATION").service  # type: ignore[union-attr]
    service._cpu = SkipsRowsCpuBackendForTests()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await backend_runner.cleanup()


async def test_tampered_matrix_backend_is_flagged(
    tmp_path: Path, tampered_node: str, scheduler_signer: LocalSigner
) -> None:
    registry = CollectorRegistry()
    config = scheduler_config(tmp_path, [{"url": tampered_node}])
    report = await one_round(config, scheduler_signer, registry)
    result = verdicts(report)
    assert result["matmul"] == (False, REASON_PROOF_INVALID)
    assert all(ok for check, (ok, _) in result.items() if check != "matmul")
    [probe] = report.nodes
    matmul = next(r for r in probe.results if r.check == "matmul")
    assert "differs from the recomputed" in matmul.detail
    assert registry.get_sample_value("fxn_scheduler_node_up", {"node": tampered_node}) == 0.0
    assert (
        registry.get_sample_value(
            "fxn_scheduler_checks_total",
            {"check": "matmul", "outcome": "fail", "reason": REASON_PROOF_INVALID},
        )
        == 1.0
    )


async def test_node_with_another_key_is_flagged(
    tmp_path: Path, tampered_node: str, scheduler_signer: LocalSigner
) -> None:
    expected = LocalSigner.from_hex(DEV_KEYS[3]).address  # the scheduler expects a different node there
    report = await one_round(
        scheduler_config(tmp_path, [{"url": tampered_node, "address": expected}]),
        scheduler_signer,
        CollectorRegistry(),
    )
    # /health already claims another address than the expected one: nothing more is sent.
    assert verdicts(report) == {
        "reachable": (False, REASON_UNEXPECTED_ADDRESS),
        "identity": (False, "skipped"),
        "endpoint": (False, "skipped"),
        "matmul": (False, "skipped"),
        "inference": (False, "skipped"),
    }


async def test_unreachable_node_is_recorded_with_every_check_skipped(
    tmp_path: Path, scheduler_signer: LocalSigner
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    report = await one_round(
        scheduler_config(tmp_path, [{"url": url}]), scheduler_signer, CollectorRegistry()
    )
    assert verdicts(report) == {
        "reachable": (False, "unreachable"),
        "identity": (False, "skipped"),
        "endpoint": (False, "skipped"),
        "matmul": (False, "skipped"),
        "inference": (False, "skipped"),
    }


async def test_scheduler_not_admitted_by_the_node_gets_an_unsigned_401_that_fails_identity(
    tmp_path: Path, tampered_node: str, stranger_signer: LocalSigner
) -> None:
    report = await one_round(
        scheduler_config(tmp_path, [{"url": tampered_node}]), stranger_signer, CollectorRegistry()
    )
    [probe] = report.nodes
    identity = next(r for r in probe.results if r.check == "identity")
    # Refused before the node verified the scheduler, so the refusal is unsigned: not the node's word.
    assert (identity.ok, identity.reason) == (False, "wrong_signer")
    assert identity.detail.startswith("HTTP 401 unknown_caller: the answer names node '(none)'")
    assert verdicts(report)["matmul"] == (False, "skipped")


async def test_serve_exports_metrics_while_running_and_stops_on_request(
    tmp_path: Path, tampered_node: str, scheduler_signer: LocalSigner
) -> None:
    import asyncio

    from function_node.scheduler.service import serve

    port = free_port()
    config = SchedulerConfig.model_validate(
        {
            "nodes": [{"url": tampered_node}],
            "interval": "1h",
            "matmul": {"size": 64, "rows": 8},
            "metrics": {"listenAddress": f"127.0.0.1:{port}"},
        }
    ).with_base_dir(tmp_path)
    stop, first_round = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(config, scheduler_signer, stop=stop, on_round=lambda *_: first_round.set())
    )
    await asyncio.wait_for(first_round.wait(), timeout=60)
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    stop.set()
    assert await asyncio.wait_for(task, timeout=30) == []  # rounds=None keeps no reports
    assert resp.status == 200
    assert f'fxn_scheduler_node_up{{node="{tampered_node}"}} 0.0' in text
    assert 'fxn_scheduler_checks_total{check="matmul",outcome="fail",reason="proof_invalid"} 1.0' in text
    with SchedulerStore(config.database_path) as store:  # the round outlived the process's memory
        assert [r.check for r in store.results() if not r.ok] == ["matmul"]


async def test_nodes_come_from_provider_metadata_on_chain(
    tmp_path: Path, tampered_node: str, scheduler_signer: LocalSigner, node_signer: LocalSigner
) -> None:
    """Active providers with a URL are probed (IDENTITY must prove the registered owner); paused ones,
    excluded owners and metadata without a URL are not."""
    import asyncio

    from function_node.devnet.anvil import AnvilProcess
    from function_node.devnet.deploy import DEV_DEPLOYER_KEY, ProviderSpec, RegistryAdmin, deploy_network
    from function_node.scheduler.service import registry_node_source

    paused = ProviderSpec(
        owner=node_signer.address.lower(), model_id=1, metadata="http://127.0.0.1:9", id=b"p"
    )
    excluded_owner = LocalSigner.from_hex(DEV_KEYS[3]).address.lower()
    providers = [
        ProviderSpec(owner=node_signer.address.lower(), model_id=1, metadata=f'{{"url": "{tampered_node}"}}'),
        paused,
        ProviderSpec(owner=excluded_owner, model_id=1, metadata="http://127.0.0.1:10"),
        ProviderSpec(owner=LocalSigner.from_hex(DEV_KEYS[4]).address.lower(), model_id=1, metadata="no url"),
    ]
    anvil = AnvilProcess(tmp_path / "anvil.log")
    anvil.start()
    try:
        deployment = await asyncio.to_thread(deploy_network, anvil.rpc_url, providers=providers)
        admin = RegistryAdmin(anvil.rpc_url, DEV_DEPLOYER_KEY, deployment)
        try:
            await asyncio.to_thread(admin.set_provider_paused, paused.entry_id(), True)
        finally:
            admin.close()
        config = SchedulerConfig.model_validate(
            {
                "providerRegistry": {
                    "rpcProvider": anvil.rpc_url,
                    "routerSmartContractAddress": deployment.router,
                },
                "exclude": [excluded_owner],
                "matmul": {"size": 64, "rows": 4},
            }
        ).with_base_dir(tmp_path)
        targets = await registry_node_source(config)()
        with SchedulerStore(config.database_path) as store:
            async with aiohttp.ClientSession() as session:
                report = await Scheduler(
                    config,
                    signer=FxnSigner(scheduler_signer),
                    store=store,
                    metrics=SchedulerMetrics(CollectorRegistry()),
                    session=session,
                    nodes=registry_node_source(config),
                ).run_round()
    finally:
        anvil.stop()
    assert sorted(t.url for t in targets) == sorted([tampered_node, "http://127.0.0.1:10"])
    [probe] = report.nodes  # the excluded owner's node is dropped by the round
    assert probe.node_url == tampered_node
    assert verdicts(report)["identity"] == (True, "")  # proved it is the registered owner


async def test_a_node_naming_no_valid_address_is_malformed(
    tmp_path: Path, scheduler_signer: LocalSigner
) -> None:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "address": "not-an-address"})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        report = await one_round(
            scheduler_config(tmp_path, [{"url": f"http://127.0.0.1:{port}"}]),
            scheduler_signer,
            CollectorRegistry(),
        )
    finally:
        await runner.cleanup()
    assert verdicts(report)["reachable"] == (False, "malformed_answer")
    assert verdicts(report)["matmul"] == (False, "skipped")


async def test_an_unforeseen_error_fails_that_node_only(
    tmp_path: Path, tampered_node: str, scheduler_signer: LocalSigner
) -> None:
    class BrokenExecutorForTests(ThreadPoolExecutor):
        """TEST ONLY: the verifier's thread pool fails, as a bug in the verification would."""

        def submit(self, *_: Any, **__: Any) -> Any:
            raise RuntimeError("verifier bug")

    config = scheduler_config(tmp_path, [{"url": tampered_node}, {"url": f"http://127.0.0.1:{free_port()}"}])
    with SchedulerStore(config.database_path) as store:
        async with aiohttp.ClientSession() as session:
            report = await Scheduler(
                config,
                signer=FxnSigner(scheduler_signer),
                store=store,
                metrics=SchedulerMetrics(CollectorRegistry()),
                session=session,
                executor=BrokenExecutorForTests(1),
            ).run_round()
    by_url = {p.node_url: {r.check: (r.ok, r.reason, r.detail) for r in p.results} for p in report.nodes}
    assert by_url[tampered_node] == {"reachable": (False, "probe_error", "RuntimeError: verifier bug")}
    other = next(url for url in by_url if url != tampered_node)
    assert by_url[other]["reachable"][:2] == (False, "unreachable")  # the round went on for the other node
