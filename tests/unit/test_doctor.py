"""fxn doctor: each failure it must detect, with its hint, against real files and processes.

The RPC test starts a real anvil on a free loopback port, checks it, stops it, and checks again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from function_node.devnet.anvil import AnvilProcess
from function_node.devnet.process import free_port
from function_node.doctor import ALL_CHECKS, DoctorContext, Finding, Status, exit_code, run_checks
from function_node.doctor.backends import check_backends
from function_node.doctor.local import check_config, check_key, check_matrix
from function_node.doctor.remote import check_clock, check_rpc
from function_node.keys import write_plaintext
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import CliResult, FxnCli


def make_home(home: Path, *, rpc: str = "", backend_port: int | None = None) -> Path:
    """A node home with a plaintext dev key (mode 0600), static lists, and one backend."""
    port = backend_port or free_port()
    rpc_line = f'rpcProvider: "{rpc}"\n' if rpc else ""
    (home / "config.yaml").write_text(
        f'{rpc_line}registry:\n  static:\n    gateways: ["{LocalSigner.from_hex(DEV_KEYS[0]).address}"]\n'
    )
    (home / "backend.yaml").write_text(
        f'models:\n  - name: "dev"\n    backends:\n      - url: "http://127.0.0.1:{port}"\n'
    )
    write_plaintext(home / "nodekey.json", LocalSigner.from_hex(DEV_KEYS[2]))
    return home


async def run(home: Path, *checks: str) -> list[Finding]:
    chosen = [(name, check) for name, check in ALL_CHECKS if name in checks]
    return await run_checks(DoctorContext(home=home, timeout=2.0), chosen)


def by_check(findings: list[Finding], name: str) -> list[Finding]:
    return [f for f in findings if f.check == name]


async def test_key_readable_by_others_fails_with_chmod_hint(fxn_home: Path) -> None:
    home = make_home(fxn_home)
    key = home / "nodekey.json"
    key.chmod(0o644)
    [finding] = by_check(await run(home, "config", "key"), "key")
    assert finding.status is Status.FAIL
    assert finding.message == f"{key} can be read by group or others (mode 0644)"
    assert finding.hint == f"chmod 600 {key}"


async def test_private_plaintext_key_is_a_warning_naming_the_address(fxn_home: Path) -> None:
    home = make_home(fxn_home)
    ctx = DoctorContext(home=home)
    [finding] = await check_key(ctx)
    assert finding.status is Status.WARN
    assert ctx.address == LocalSigner.from_hex(DEV_KEYS[2]).address
    assert "legacy plaintext key" in finding.message


async def test_missing_key_fails_with_init_hint(fxn_home: Path) -> None:
    home = make_home(fxn_home)
    (home / "nodekey.json").unlink()
    [finding] = await check_key(DoctorContext(home=home))
    assert (finding.status, finding.hint) == (Status.FAIL, "create one with `fxn init` or `fxn accounts new`")


async def test_unreachable_backend_fails_with_its_url(fxn_home: Path) -> None:
    port = free_port()  # nothing listens there
    home = make_home(fxn_home, backend_port=port)
    findings = await run(home, "config", "backends")
    [finding] = by_check(findings, "backends")
    assert finding.status is Status.FAIL
    assert finding.message == f"dev: http://127.0.0.1:{port}/v1/models is unreachable (ClientConnectorError)"
    assert finding.hint == f"start the model server at http://127.0.0.1:{port} or fix its url in backend.yaml"


async def test_reachable_backend_passes(fxn_home: Path) -> None:
    from aiohttp import web

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "dev", "object": "model"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        ctx = DoctorContext(home=make_home(fxn_home, backend_port=port))
        await check_config(ctx)
        [finding] = await check_backends(ctx)
    finally:
        await runner.cleanup()
    assert finding.status is Status.OK
    assert finding.message == f'dev: http://127.0.0.1:{port}/v1/models answered 200 and serves "dev"'


@pytest.mark.integration
async def test_rpc_up_then_stopped(fxn_home: Path, tmp_path: Path) -> None:
    anvil = AnvilProcess(tmp_path / "anvil.log")
    anvil.start()
    try:
        home = make_home(fxn_home, rpc=anvil.rpc_url)
        up = await run(home, "config", "rpc", "clock")
        assert [f.status for f in by_check(up, "rpc")] == [Status.OK]
        assert by_check(up, "rpc")[0].message.startswith(f"{anvil.rpc_url}: chain 31337, block ")
        assert by_check(up, "clock")[0].status is not Status.FAIL
    finally:
        anvil.stop()
    down = await run(home, "config", "rpc", "clock")
    [rpc] = by_check(down, "rpc")
    assert rpc.status is Status.FAIL
    assert rpc.message.startswith(f"{anvil.rpc_url} is unreachable: Cannot connect to host 127.0.0.1:")
    assert rpc.hint.startswith("start the Ethereum node or fix rpcProvider in config.yaml")
    [clock] = by_check(down, "clock")
    assert (clock.status, clock.message) == (Status.WARN, "skipped: no RPC provider answered")
    assert exit_code(down) == 1


@pytest.mark.integration
async def test_rpc_of_another_chain_than_chain_id_fails(fxn_home: Path, tmp_path: Path) -> None:
    anvil = AnvilProcess(tmp_path / "anvil.log")
    anvil.start()
    try:
        home = make_home(fxn_home, rpc=anvil.rpc_url)
        with (home / "config.yaml").open("a") as config:
            config.write("chainId: 1\n")
        [rpc] = by_check(await run(home, "config", "rpc"), "rpc")
    finally:
        anvil.stop()
    assert (rpc.status, rpc.message, rpc.hint) == (
        Status.FAIL,
        f"{anvil.rpc_url} serves chain 31337, not chainId 1: the node skips it",
        "point this rpcProvider URL at chain 1, or correct chainId in config.yaml",
    )


async def test_clock_behind_the_chain_fails() -> None:
    from function_node.config.settings import Settings

    ctx = DoctorContext(home=Path("."), settings=Settings())
    ctx.notes["latest_block"] = ("http://rpc", 7, 1000.0 + 60.0, 1000.0)  # the block is 60 s in our future
    [finding] = await check_clock(ctx)
    assert finding.status is Status.FAIL
    assert finding.message == "this machine's clock is at least 60s behind block 7 of http://rpc"
    assert finding.hint.startswith("enable time sync")


async def test_invalid_config_fails_and_later_checks_say_skipped(fxn_home: Path) -> None:
    home = make_home(fxn_home)
    (home / "config.yaml").write_text("nodee: {}\n")
    ctx = DoctorContext(home=home)
    findings = [*await check_config(ctx), *await check_rpc(ctx)]
    assert findings[0].status is Status.FAIL and "nodee" in findings[0].message
    assert findings[-1].message == "skipped: config.yaml did not load"


async def test_local_matrix_proof_verifies(fxn_home: Path) -> None:
    [finding] = await check_matrix(DoctorContext(home=fxn_home, matrix_size=64))
    assert finding.status is Status.OK and finding.message.startswith(
        "local n=64 proof (CPU) computed and verified"
    )


async def test_a_crashing_check_is_reported_not_raised(fxn_home: Path) -> None:
    async def broken(_: DoctorContext) -> list[Finding]:
        raise RuntimeError("boom")

    [finding] = await run_checks(DoctorContext(home=fxn_home), [("broken", broken)])
    assert (finding.check, finding.status, finding.message) == (
        "broken",
        Status.FAIL,
        "the check itself failed: RuntimeError: boom",
    )


def test_cli_exit_code_and_hint_lines(fxn_cli: FxnCli, fxn_env: Path) -> None:
    home = make_home(fxn_env)
    (home / "nodekey.json").chmod(0o640)
    result: CliResult = fxn_cli("doctor", "--skip", "matrix", "--skip", "gpu", "--timeout", "1")
    assert result.code == 1
    assert (
        f"FAIL key          {home / 'nodekey.json'} can be read by group or others (mode 0640)"
        in result.stdout
    )
    assert f"fix: chmod 600 {home / 'nodekey.json'}" in result.stdout


def test_cli_refuses_an_unknown_skip(fxn_cli: FxnCli) -> None:
    result = fxn_cli("doctor", "--skip", "nonsense")
    assert result.code == 2
    assert "--skip nonsense: no such check" in result.stderr


@pytest.mark.integration
async def test_registries_and_own_registration_on_a_real_chain(fxn_home: Path, tmp_path: Path) -> None:
    import asyncio

    from function_node.devnet.deploy import ProviderSpec, deploy_network
    from function_node.devnet.homes import write_node_home

    node = LocalSigner.from_hex(DEV_KEYS[2])
    anvil = AnvilProcess(tmp_path / "anvil.log")
    anvil.start()
    try:
        deployment = await asyncio.to_thread(
            deploy_network, anvil.rpc_url, providers=[ProviderSpec(owner=node.address.lower(), model_id=7)]
        )
        home = write_node_home(
            fxn_home / "registered",
            port=free_port(),
            rpc_url=anvil.rpc_url,
            router=deployment.router,
            model="dev",
            fxn_id=7,
            backend_url="http://127.0.0.1:9",
        )
        findings = await run(home.path, "config", "key", "rpc", "clock", "registries", "registration")
        registries = [f.message for f in by_check(findings, "registries")]
        assert registries == ["gateway registry: 1 active entries", "provider registry: 1 active entries"]
        [registration] = by_check(findings, "registration")
        assert (registration.status, registration.message) == (
            Status.OK,
            f"{node.address} is an active provider for model ids [7]",
        )
        # The same network seen from a node whose key is not registered.
        write_plaintext(home.path / "nodekey.json.other", LocalSigner.from_hex(DEV_KEYS[4]))
        (home.path / "nodekey.json").unlink()
        (home.path / "nodekey.json.other").rename(home.path / "nodekey.json")
        findings = await run(home.path, "config", "key", "rpc", "registries", "registration")
        [registration] = by_check(findings, "registration")
        assert registration.status is Status.WARN
        assert (
            registration.message == f"{LocalSigner.from_hex(DEV_KEYS[4]).address} is not an active provider"
        )
        assert registration.hint.startswith("register this address in the network's provider registry")
    finally:
        anvil.stop()


@pytest.mark.integration
async def test_a_wrong_router_address_fails_with_a_hint(fxn_home: Path, tmp_path: Path) -> None:
    anvil = AnvilProcess(tmp_path / "anvil.log")
    anvil.start()
    try:
        home = make_home(fxn_home, rpc=anvil.rpc_url)
        config = (home / "config.yaml").read_text()
        (home / "config.yaml").write_text(config + f'  routerSmartContractAddress: "0x{"12" * 20}"\n')
        findings = await run(home, "config", "rpc", "registries")
    finally:
        anvil.stop()
    failures = by_check(findings, "registries")
    assert [f.status for f in failures] == [Status.FAIL, Status.FAIL]
    assert failures[0].message.startswith(
        "the gateway registry could not be read: gatewayRegistry(): no contract"
    )
    assert (
        failures[0].hint
        == "check registry.routerSmartContractAddress and that rpcProvider is the right chain"
    )


async def test_a_registry_snapshot_past_max_staleness_fails(fxn_home: Path) -> None:
    import time

    import orjson

    from function_node.config.settings import Settings
    from function_node.doctor.remote import _snapshot_freshness

    cache = fxn_home / "registry-cache"
    cache.mkdir()
    now = time.time()
    (cache / "gateway.json").write_bytes(orjson.dumps({"format": 1, "fetchedAt": now - 7200, "entries": []}))
    (cache / "provider.json").write_bytes(orjson.dumps({"format": 1, "fetchedAt": now - 10, "entries": []}))
    (cache / "scheduler.json").write_text("{broken")
    ctx = DoctorContext(home=fxn_home, settings=Settings())  # maxStaleness defaults to 1h
    gateway, provider, scheduler = _snapshot_freshness(ctx)
    assert gateway.status is Status.FAIL
    assert gateway.message.startswith("the node's cached gateway registry is 720")
    assert gateway.message.endswith("past maxStaleness (3600s): a running node refuses those callers")
    assert gateway.hint.startswith("make the RPC reachable")
    assert provider.status is Status.OK
    assert (scheduler.status, scheduler.message) == (Status.WARN, f"{cache / 'scheduler.json'} is unreadable")


async def test_fake_nvidia_inventory_without_cuda_torch_fails_the_matrix_check(fxn_home: Path) -> None:
    """FAKED: the gpu check's finding (an NVIDIA GPU listed); this machine's torch really has no CUDA."""
    from function_node.challenges.matmul.compute import cuda_available

    if cuda_available():
        pytest.skip("this machine has CUDA: the GPU test below covers it")
    ctx = DoctorContext(home=fxn_home, matrix_size=64)
    ctx.notes["nvidia_gpu"] = True
    [finding] = await check_matrix(ctx)
    assert (finding.status, finding.message) == (
        Status.FAIL,
        "an NVIDIA GPU is present but torch cannot use it",
    )
    assert finding.hint.startswith('install the CUDA build of torch (pip install "function-node[cuda]")')


@pytest.mark.gpu
async def test_gpu_inventory_and_cuda_proof(fxn_home: Path) -> None:
    from function_node.challenges.matmul.compute import cuda_available
    from function_node.doctor.local import check_gpu

    if not cuda_available():
        pytest.skip("no CUDA device")
    ctx = DoctorContext(home=fxn_home, matrix_size=1024)
    gpus = await check_gpu(ctx)
    assert gpus and all(f.status is Status.OK for f in gpus)
    labels = [f.message for f in await check_matrix(ctx)]
    assert any("(CPU) computed and verified" in m for m in labels)
    assert any("(CUDA) computed and verified" in m for m in labels)
