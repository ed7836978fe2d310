"""Real ``fxn start`` processes: SIGHUP while starting, a worker killed with -9, SIGTERM drain with workers.

A SIGHUP's default action ends a process; these tests send it while the node is still loading its
modules (seen from outside: a shared library that the CLI's imports map appears in /proc/PID/maps,
about a second before the node listens), and while ``--workers`` are still starting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from function_node.client import FxnAuth
from function_node.devnet.redis_server import RedisServer
from function_node.metrics import MULTIPROC_DIR_ENV
from function_node.signing import LocalSigner
from tests.fixtures.backend import FakeBackend
from tests.fixtures.drain import stream_across_sigterm
from tests.fixtures.node import NodeProcess, model_doc, two_worker_node

pytestmark = pytest.mark.integration

# Mapped while `fxn` imports typer, before anything of the node is set up (checked in /proc/PID/maps).
_LOADING_MARKER = "_uuid.cpython"


def _chat(model: str, **extra: object) -> bytes:
    return orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **extra}
    )


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _healthy(url: str) -> bool:
    with (
        contextlib.suppress(OSError, urllib.error.URLError),
        urllib.request.urlopen(url + "/health", timeout=1),
    ):
        return True
    return False


def _hup_until_healthy(node: NodeProcess, pids: list[int]) -> int:
    """SIGHUP every 20 ms to ``pids`` until the node answers /health; how many were sent."""
    sent = 0
    while not _healthy(node.url):
        assert node.process.running, f"the node died of a SIGHUP while starting:\n{node.process.tail()}"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        sent += 1
        time.sleep(0.02)
    return sent


def _events(node: NodeProcess, name: str) -> list[dict[str, Any]]:
    return [line for line in node.log_lines() if line.get("event") == name]


def _event_is(name: str, **fields: object) -> Callable[[dict[str, Any]], bool]:
    return lambda d: d.get("event") == name and all(d.get(k) == v for k, v in fields.items())


def _count_is(node: NodeProcess, name: str, count: int) -> Callable[[], bool]:
    return lambda: len(_events(node, name)) == count


def test_a_sighup_while_the_node_starts_is_applied_not_fatal(
    tmp_path: Path, fake_backend: FakeBackend, gateway_signer: LocalSigner
) -> None:
    node = NodeProcess(
        tmp_path,
        models=[model_doc("first", [fake_backend.url])],
        gateways=[gateway_signer.address],
        schedulers=[],
    )
    node.process.port = None  # started by hand: the signals go in before it listens
    node.process.start()
    assert node.process.process is not None
    pid = node.process.process.pid
    try:
        _wait(lambda: _LOADING_MARKER in _maps(pid) or not node.process.running, "fxn to load its modules")
        node.write_models([model_doc("second", [fake_backend.url])])  # a deploy edits, then signals
        assert _hup_until_healthy(node, [pid]) > 10
        assert node.process.running
        node.wait_for_log(
            lambda d: d.get("event") == "SIGHUP arrived while starting; re-reading backend.yaml now"
        )
        with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
            assert http.post(node.url + "/v1/chat/completions", content=_chat("second")).status_code == 200
    finally:
        assert node.stop() == 0


def test_sighup_while_workers_start_reaches_them_without_killing_them(
    tmp_path: Path, fake_backend: FakeBackend, gateway_signer: LocalSigner, redis_server: RedisServer
) -> None:
    node = two_worker_node(tmp_path, fake_backend, gateway_signer, redis_server)
    node.process.port = None
    node.process.start()
    assert node.process.process is not None
    supervisor = node.process.process.pid
    try:
        # The workers have just been spawned: they are importing and have no SIGHUP handler yet.
        started = node.wait_for_log(lambda d: d.get("event") == "workers started", timeout=30)
        assert _hup_until_healthy(node, [supervisor]) >= 1
        _wait(lambda: len(_events(node, "listening")) == 2, "both workers to listen")
        for _ in range(5):  # and a few more once they serve
            os.kill(supervisor, signal.SIGHUP)
            time.sleep(0.05)
        assert node.process.running
        assert all(Path(f"/proc/{p}").exists() for p in started["pids"])
        assert _events(node, "worker exited; restarting it") == []
        assert len(_events(node, "SIGHUP arrived while starting; re-reading backend.yaml now")) == 2
        with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
            assert http.post(node.url + "/v1/chat/completions", content=_chat("dev")).status_code == 200
    finally:
        assert node.stop() == 0


def test_a_worker_killed_with_9_is_restarted_and_the_node_keeps_serving(
    tmp_path: Path, fake_backend: FakeBackend, gateway_signer: LocalSigner, redis_server: RedisServer
) -> None:
    node = two_worker_node(tmp_path, fake_backend, gateway_signer, redis_server)
    shared_metrics = tmp_path / "prometheus"
    shared_metrics.mkdir()
    node.process.env[MULTIPROC_DIR_ENV] = str(shared_metrics)
    node.start()
    try:
        _wait(lambda: len(_events(node, "listening")) == 2, "both workers to listen")
        original = node.wait_for_log(lambda d: d.get("event") == "workers started")["pids"]
        with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as http:
            for number, victim in enumerate(original, start=1):
                os.kill(victim, signal.SIGKILL)
                exited = node.wait_for_log(_event_is("worker exited; restarting it", pid=victim))
                assert exited["level"] == "error" and exited["exit_code"] == -signal.SIGKILL
                # The other worker serves while this one is down (fresh connections: no keep-alive
                # to the dead one).
                with httpx.Client(auth=FxnAuth(gateway_signer), timeout=30) as fresh:
                    assert (
                        fresh.post(node.url + "/v1/chat/completions", content=_chat("dev")).status_code == 200
                    )
                restarted = node.wait_for_log(_event_is("worker restarted", restarts_total=number))
                assert restarted["level"] == "warning" and restarted["pid"] not in original
                _wait(_count_is(node, "listening", 2 + number), "the new worker to listen")
            # Both workers now are restarted ones, and they serve.
            statuses = {
                http.post(node.url + "/v1/chat/completions", content=_chat("dev")).status_code
                for _ in range(10)
            }
            assert statuses == {200}
        # Counted where any worker's /metrics shows it; the dead workers' live gauges are gone.
        scraped = httpx.get(node.url + "/metrics", timeout=10).text
        assert "fxn_worker_restarts_total 2.0" in scraped.splitlines()
        live = [f.name for f in shared_metrics.glob("gauge_live*")]
        assert any(name.endswith(f"_{restarted['pid']}.db") for name in live), live
        assert not any(name.endswith(f"_{pid}.db") for pid in original for name in live), live
        assert node.process.running
    finally:
        assert node.stop() == 0
    assert node.wait_for_log(lambda d: d.get("event") == "workers stopped")["restarts"] == 2


def test_sigterm_with_workers_drains_the_stream_and_exits_0(
    tmp_path: Path, fake_backend: FakeBackend, gateway_signer: LocalSigner, redis_server: RedisServer
) -> None:
    node = two_worker_node(tmp_path, fake_backend, gateway_signer, redis_server).start()
    try:
        _wait(lambda: len(_events(node, "listening")) == 2, "both workers to listen")
        stream_across_sigterm(node, gateway_signer, fake_backend, stopping="stopping workers")
        assert _events(node, "worker exited; restarting it") == []
    finally:
        node.stop()
