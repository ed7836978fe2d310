"""A node that starts from fresh registry snapshots is ready before web3 is imported (issue 14: start to
ready with a warm snapshot); the RPC client is built by the first background refresh."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from function_node.chain.link import ChainLink
from function_node.errors import ChainError

# Run in a fresh interpreter, where ``sys.modules["web3"] = None`` makes any import of web3 fail: the
# registries must start, serve from their snapshots and count the background refresh that could not
# build the client, without the start itself touching web3.
_WARM_START = """
import asyncio, sys, time
from pathlib import Path
sys.modules["web3"] = None
from function_node.chain.snapshot import RegistryEntry, Snapshot, SnapshotStore
from function_node.config.settings import Settings
from function_node.metrics import NodeMetrics
from function_node.registry.directory import CallerRole
from function_node.registry.factory import open_registries

ROUTER = "0x" + "11" * 20
GATEWAY = "0x" + "22" * 20
home = Path(sys.argv[1])
store = SnapshotStore(home)
for name, entries in (("gateway", (RegistryEntry(GATEWAY),)), ("provider", ()), ("scheduler", ())):
    store.save(Snapshot(name, f"router={ROUTER}", 0, time.time(), entries))
settings = Settings.model_validate(
    {"rpcProvider": "http://127.0.0.1:9", "registry": {"routerSmartContractAddress": ROUTER}}
)

async def main() -> None:
    regs = await open_registries(settings, home, NodeMetrics(), node_address="0x" + "33" * 20)
    try:
        await regs.start()
        assert regs.directory.ready()
        assert regs.directory.role_of(GATEWAY) is CallerRole.GATEWAY
        assert sys.modules["web3"] is None and "function_node.chain.client" not in sys.modules
        gateway = regs.chain_registry("gateway")
        assert gateway is not None and not await gateway.refresh()
        assert "ImportError" in gateway.status().error or "web3" in gateway.status().error
        print("ready from snapshots")
    finally:
        await regs.close()

asyncio.run(main())
"""


def test_fresh_snapshots_make_the_node_ready_without_importing_web3(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WARM_START, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ready from snapshots" in done.stdout


async def test_the_client_is_built_once_for_concurrent_first_reads() -> None:
    link = ChainLink(["http://127.0.0.1:9"], "0x" + "11" * 20)
    assert link.client is None  # nothing is built, nothing imported, until a first read
    readers = await asyncio.gather(*(link.reader() for _ in range(8)))
    assert all(reader is readers[0] for reader in readers)
    assert link.client is readers[0].client
    await link.close()
    with pytest.raises(ChainError, match="closed"):  # a refresh after close gets no closed client
        await link.reader()


async def test_a_link_without_an_rpc_url_fails_at_its_first_read() -> None:
    link = ChainLink([], "0x" + "11" * 20)
    with pytest.raises(ChainError, match="rpcProvider"):
        await link.reader()
    assert link.client is None


async def test_a_closed_link_builds_no_client() -> None:
    link = ChainLink(["http://127.0.0.1:9"], "0x" + "11" * 20)
    await link.close()
    with pytest.raises(ChainError, match="closed"):
        await link.reader()
    assert link.client is None
