"""fxn doctor against real servers: the model each backend serves (the development backend's real
/v1/models), Redis (a real redis-server), who the node admits, and RPC URLs never shown whole."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from function_node.devnet.anvil import AnvilProcess
from function_node.devnet.dev_backend import create_dev_backend_app
from function_node.devnet.process import free_port
from function_node.devnet.redis_server import RedisServer
from function_node.doctor import DoctorContext, Finding, Status
from function_node.doctor.backends import check_backends
from function_node.doctor.local import check_config
from function_node.doctor.remote import check_nonce_store, check_rpc
from function_node.keys import write_plaintext
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import FxnCli

GATEWAY = LocalSigner.from_hex(DEV_KEYS[0]).address
SERVED = "meta-llama/Llama-3.1-8B-Instruct"
RPC_KEY = "0123456789abcdef0123456789abcdef"

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve aiohttp apps on loopback ports; returns each one's root URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


STATIC = {"registry": {"static": {"gateways": [GATEWAY]}}}


def home_with(
    home: Path, *, config: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None
) -> Path:
    (home / "config.yaml").write_text(yaml.safe_dump(STATIC if config is None else config))
    (home / "backend.yaml").write_text(yaml.safe_dump({"models": models or []}))
    key = home / "nodekey.json"
    if not key.exists():
        write_plaintext(key, LocalSigner.from_hex(DEV_KEYS[2]))
    return home


def model(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "backends": [{"url": url}], **extra}


Check = Callable[[DoctorContext], Awaitable[Sequence[Finding]]]


async def findings_of(home: Path, *checks: Check) -> list[Finding]:
    ctx = DoctorContext(home=home, timeout=2.0)
    await check_config(ctx)
    out: list[Finding] = []
    for check in checks:
        out.extend(await check(ctx))
    return out


# --- the model a backend serves ---------------------------------------------------------------------


async def test_a_name_the_backend_does_not_serve_fails_with_the_fix(fxn_home: Path, serve: Serve) -> None:
    url = await serve(create_dev_backend_app(models=[SERVED]))
    home = home_with(fxn_home, models=[model("llama", url)])
    [finding] = await findings_of(home, check_backends)
    assert finding.status is Status.FAIL
    assert finding.message == (
        f'llama: the backend at {url} does not serve "llama" (it serves: {SERVED}); every request would '
        "get its 404"
    )
    assert finding.hint == (
        "set upstreamModel (the name is forwarded as it is) of llama in backend.yaml to the backend's model "
        f'id, e.g. upstreamModel: "{SERVED}" (vLLM: its --served-model-name)'
    )


async def test_a_wrong_upstream_model_fails_and_the_right_one_passes(fxn_home: Path, serve: Serve) -> None:
    url = await serve(create_dev_backend_app(models=[SERVED, "other"]))
    for upstream, status in (("meta-llama/Llama-3-8B", Status.FAIL), (SERVED, Status.OK)):
        home = home_with(fxn_home, models=[model("llama", f"{url}/v1", upstreamModel=upstream)])
        [finding] = await findings_of(home, check_backends)
        assert finding.status is status, finding
    assert finding.message == f'llama: {url}/v1/models answered 200 and serves "{SERVED}"'


async def test_an_ollama_name_without_its_tag_is_served(fxn_home: Path, serve: Serve) -> None:
    url = await serve(create_dev_backend_app(models=["llama3.1:latest"]))
    home = home_with(fxn_home, models=[model("llama3.1", f"{url}/v1")])
    [finding] = await findings_of(home, check_backends)
    assert finding.status is Status.OK


async def test_a_backend_without_a_model_list_is_a_warning(fxn_home: Path, serve: Serve) -> None:
    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", health)
    url = await serve(app)
    home = home_with(fxn_home, models=[model("m", url, healthCheck={"path": "/health"})])
    [finding] = await findings_of(home, check_backends)
    assert (finding.status, finding.message) == (
        Status.WARN,
        f"m: {url}/health answered 200, but /v1/models did not list its models",
    )
    assert finding.hint == 'the node forwards "model": "m"; make sure the server serves that name'


# --- the nonce store -----------------------------------------------------------------------------------


@pytest.mark.integration
async def test_redis_that_answers_and_redis_that_does_not(fxn_home: Path, redis_server: RedisServer) -> None:
    def config(url: str) -> dict[str, Any]:
        return {**STATIC, "nonceCache": {"backend": "redis", "redisUrl": url}}

    home = home_with(fxn_home, config=config(redis_server.url))
    [up] = await findings_of(home, check_nonce_store)
    assert (up.status, up.message) == (
        Status.OK,
        f"Redis at redis://127.0.0.1:{redis_server.port}/*** answers",
    )
    dead = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    home_with(fxn_home, config=config(dead))
    [down] = await findings_of(home, check_nonce_store)
    assert down.status is Status.FAIL
    assert down.message.startswith("Redis at redis://***@127.0.0.1:")
    assert "hunter2" not in down.message + down.hint
    assert down.hint.startswith("start Redis (or Valkey) or fix nonceCache.redisUrl in config.yaml")


async def test_the_memory_store_is_fine_for_one_process(fxn_home: Path) -> None:
    [finding] = await findings_of(home_with(fxn_home), check_nonce_store)
    assert (finding.status, finding.message) == (
        Status.OK,
        "memory nonce store (one process; --workers needs redis)",
    )


# --- who the node admits -----------------------------------------------------------------------------


async def test_bypass_auth_fails(fxn_home: Path) -> None:
    ctx = DoctorContext(home=home_with(fxn_home, config={"registry": {"bypassAuth": True}}))
    findings = list(await check_config(ctx))
    [flag] = [f for f in findings if "bypassAuth" in f.message]
    assert flag.status is Status.FAIL
    assert flag.message == (
        "registry.bypassAuth is true: authentication is off and anyone can use this node's backends"
    )


async def test_no_gateway_source_fails(fxn_home: Path) -> None:
    ctx = DoctorContext(home=home_with(fxn_home, config={"node": {"listenPort": 8080}}))
    [flag] = [f for f in await check_config(ctx) if f.status is Status.FAIL]
    assert flag.message.startswith("no gateway can be admitted")
    assert flag.hint.startswith("set registry.routerSmartContractAddress (and rpcProvider)")


# --- RPC URLs ---------------------------------------------------------------------------------------


async def test_an_unreachable_rpc_url_is_shown_redacted(fxn_home: Path) -> None:
    port = free_port()
    config = {**STATIC, "rpcProvider": f"https://op:s3cret@127.0.0.1:{port}/v3/{RPC_KEY}"}
    [finding] = await findings_of(home_with(fxn_home, config=config), check_rpc)
    assert finding.status is Status.FAIL
    assert finding.message.startswith(f"https://***@127.0.0.1:{port}/*** is unreachable: ")
    assert RPC_KEY not in finding.message + finding.hint and "s3cret" not in finding.message + finding.hint
    assert finding.hint.endswith('"$RPC_URL"` (RPC_URL: that rpcProvider entry)')


@pytest.mark.integration
async def test_a_reachable_rpc_url_with_credentials_is_shown_without_them(
    fxn_home: Path, tmp_path: Path
) -> None:
    anvil = AnvilProcess(tmp_path / "anvil.log")
    anvil.start()
    try:
        url = anvil.rpc_url.replace("http://", "http://op:s3cret@")
        config = {**STATIC, "rpcProvider": url}
        [finding] = await findings_of(home_with(fxn_home, config=config), check_rpc)
    finally:
        anvil.stop()
    assert finding.status is Status.OK
    assert finding.message.startswith(
        f"{anvil.rpc_url.replace('http://', 'http://***@')}: chain 31337, block "
    )


def test_doctor_json(fxn_cli: FxnCli, fxn_env: Path) -> None:
    home_with(fxn_env, config={"registry": {"bypassAuth": True}})
    result = fxn_cli("doctor", "--json", "--skip", "matrix", "--skip", "gpu", "--skip", "backends")
    assert result.code == 1
    report = json.loads(result.stdout)
    assert (report["home"], report["ok"]) == (str(fxn_env), False)
    statuses = {(f["check"], f["status"]) for f in report["findings"]}
    assert ("config", "fail") in statuses and ("nonces", "ok") in statuses
    assert all(set(f) == {"check", "status", "message", "hint"} for f in report["findings"])
