"""Registry sync cost: a full read of 10,000 providers and 1,000 gateways from anvil, lookups, node start.

Run: .venv/bin/python bench/registry_sync.py [--providers 10000] [--gateways 1000] [--runs 5] [--no-node]

Prints one table: median (and min/max) of each measurement over --runs, all taken in this one run,
so the ratios compare like with like. "eth_call" is the RPC round trip (anvil executing the
non-view ...Live function and shipping the ABI-encoded answer), "decode" is fast_abi turning it into
records, beside the two alternatives it was chosen over: plain eth_abi, and eth_abi with a fast address
decoder registered in place of its own; "refresh" is CachedRegistry.refresh() end to end (calls +
decode + frozenset + snapshot write). A last table decodes a hostile answer whose element offsets all
point at one provider (valid for eth_abi, refused by fast_abi): how much it expands and how long it takes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from eth_abi import decoding, encoding
from eth_abi.abi import decode, encode
from eth_abi.codec import ABICodec
from eth_abi.registry import BaseEquals
from eth_abi.registry import registry as default_abi_registry
from eth_utils.abi import function_signature_to_4byte_selector

from function_node.chain.cached import CachedRegistry
from function_node.chain.client import ChainClient
from function_node.chain.contracts import NetworkReader, decode_gateways, decode_providers
from function_node.chain.fast_abi import AbiDecodeError, decode_tuple_array
from function_node.chain.fetchers import fetch_gateways, fetch_providers
from function_node.chain.snapshot import RegistryEntry, SnapshotStore
from function_node.devnet.anvil import AnvilProcess
from function_node.devnet.deploy import (
    DEV_DEPLOYER_KEY,
    DEV_PROVIDER,
    ProviderSpec,
    RegistryAdmin,
    deploy_network,
)
from function_node.devnet.process import ManagedProcess, free_port
from function_node.logs import configure_logging
from function_node.metrics import NodeMetrics
from function_node.registry.directory import CallerDirectory
from function_node.registry.static import StaticRegistry

NODE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil account 2


class _PlainAddressDecoder(decoding.AddressDecoder):
    """eth_abi's address decoder without its normalisation step: lower-case hex of the 20 bytes."""

    # eth_abi types decoder_fn for its own normaliser; this one takes the same 20 raw bytes.
    decoder_fn = staticmethod(lambda raw: "0x" + bytes(raw).hex())  # type: ignore[assignment]


def fast_address_codec() -> ABICodec:
    """The alternative to fast_abi: eth_abi itself, with only its address decoder replaced."""
    # eth_abi's registry API is untyped.
    registry = default_abi_registry.copy()  # type: ignore[no-untyped-call]
    registry.unregister("address")
    equals = BaseEquals("address")  # type: ignore[no-untyped-call]
    registry.register(equals, encoding.AddressEncoder, _PlainAddressDecoder, label="address")
    return ABICodec(registry)


def stats(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[list[float], Any]:
    out: list[float] = []
    result: Any = None
    for _ in range(runs):
        start = time.perf_counter()
        result = await fn()
        out.append(time.perf_counter() - start)
    return out, result


def populate(rpc_url: str, providers: int, gateways: int) -> tuple[str, float]:
    start = time.perf_counter()
    deployment = deploy_network(rpc_url, DEV_DEPLOYER_KEY, gateways=(), schedulers=())
    admin = RegistryAdmin(rpc_url, DEV_DEPLOYER_KEY, deployment)
    try:
        specs = [
            ProviderSpec(f"0x{i + 1:040x}", i % 16, f'{{"url":"http://10.0.{i // 256}.{i % 256}:8080"}}')
            for i in range(providers)
        ]
        specs[0] = ProviderSpec(DEV_PROVIDER, 2, '{"url":"http://127.0.0.1:8080"}')
        admin.register_providers(specs, batch=500)
        admin.register_gateways([f"0x{0xABC00000 + i:040x}" for i in range(gateways)], batch=500)
    finally:
        admin.close()
    return deployment.router, time.perf_counter() - start


async def chain_rows(rpc_url: str, router: str, runs: int, home: Path) -> list[tuple[str, list[float], str]]:
    rows: list[tuple[str, list[float], str]] = []
    async with ChainClient([rpc_url], timeout=60) as client:
        reader = NetworkReader(client, router)
        for kind, signature, decoder, at in (
            ("providers", "getActiveProvidersLive()", decode_providers, await reader.provider_registry()),
            ("gateways", "getActiveGatewaysLive()", decode_gateways, await reader.gateway_registry()),
        ):
            selector = bytes(function_signature_to_4byte_selector(signature))

            async def call(at: str = at, selector: bytes = selector) -> bytes:
                return await client.call(at, selector)

            call_s, data = await timed(call, runs)
            decode_s: list[float] = []
            for _ in range(runs):
                start = time.perf_counter()
                records = decoder(data)
                decode_s.append(time.perf_counter() - start)
            rows.append((f"{kind}: eth_call", call_s, f"{len(records)} entries, {len(data) / 1e6:.1f} MB"))
            rows.append((f"{kind}: decode", decode_s, "fast_abi"))
            abi_type = (
                "(address,bytes,uint256,uint256,string,bool)[]"
                if kind == "providers"
                else ("(address,bytes,uint256,string,bool)[]")
            )
            slow: list[float] = []
            for _ in range(runs):
                start = time.perf_counter()
                decode([abi_type], data)
                slow.append(time.perf_counter() - start)
            rows.append((f"{kind}: decode", slow, "eth_abi, for comparison"))
            codec = fast_address_codec()
            assert codec.decode([abi_type], data) == decode([abi_type], data)
            patched: list[float] = []
            for _ in range(runs):
                start = time.perf_counter()
                codec.decode([abi_type], data)
                patched.append(time.perf_counter() - start)
            rows.append((f"{kind}: decode", patched, "eth_abi + fast address decoder"))
        metrics = NodeMetrics()
        store = SnapshotStore(home)
        for name, fetch in (("provider", fetch_providers(reader)), ("gateway", fetch_gateways(reader))):
            registry = CachedRegistry(
                name,
                fetch,
                source="bench",
                poll_interval=60,
                max_staleness=3600,
                metrics=metrics,
                snapshots=store,
            )
            refresh_s, ok = await timed(registry.refresh, runs)
            assert ok, registry.status().error
            rows.append((f"{name}: refresh", refresh_s, f"{registry.status().entries} owners"))

        async def both() -> None:
            regs = [
                CachedRegistry(n, f, source="b", poll_interval=60, max_staleness=3600, metrics=metrics)
                for n, f in (("provider", fetch_providers(reader)), ("gateway", fetch_gateways(reader)))
            ]
            await asyncio.gather(*(r.refresh() for r in regs))

        full_s, _ = await timed(both, runs)
        rows.append(("full sync (both, concurrent)", full_s, "the node's start-up refresh"))
    return rows


def lookup_rows(owners: int) -> list[tuple[str, list[float], str]]:
    addresses = [f"0x{i + 1:040x}" for i in range(owners)]
    entries = [RegistryEntry(owner=a) for a in addresses]

    async def fetch() -> list[RegistryEntry]:
        return entries

    registry = CachedRegistry(
        "bench", fetch, source="b", poll_interval=60, max_staleness=3600, metrics=NodeMetrics()
    )
    assert asyncio.run(registry.refresh())
    static = StaticRegistry("bench-static", addresses)
    hit, miss = addresses[owners // 2], "0x" + "f" * 40
    directory = CallerDirectory(gateways=[registry])
    rows = []
    for label, stmt in (
        ("CachedRegistry.contains (hit)", lambda: registry.contains(hit)),
        ("CachedRegistry.contains (miss)", lambda: registry.contains(miss)),
        ("StaticRegistry.contains (hit)", lambda: static.contains(hit)),
        ("CachedRegistry.status()", registry.status),
        ("CallerDirectory.role_of (hit)", lambda: directory.role_of(hit)),
    ):
        number = 200_000
        samples = [t / number for t in timeit.repeat(stmt, number=number, repeat=5)]
        rows.append((label, samples, f"{owners} owners, per call"))
    return rows


def hostile_rows(runs: int, rows: int = 10_000, metadata: int = 4096) -> list[tuple[str, list[float], str]]:
    """Every element offset points at one provider tuple: eth_abi decodes ``rows`` copies of it."""
    abi_type = "(address,bytes,uint256,uint256,string,bool)[]"
    one = encode([abi_type], [[("0x" + "ab" * 20, b"id", 2, 3, "x" * metadata, False)]])
    data = (
        (32).to_bytes(32, "big")
        + rows.to_bytes(32, "big")
        + (32 * rows).to_bytes(32, "big") * rows
        + one[96:]
    )
    slow: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        (decoded,) = decode([abi_type], data)
        slow.append(time.perf_counter() - start)
    expanded = sum(len(r[1]) + len(r[4]) for r in decoded)
    del decoded
    fast: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        try:
            decode_tuple_array(data, "abuuso")
        except AbiDecodeError:
            pass
        else:
            raise AssertionError("fast_abi accepted overlapping values")
        fast.append(time.perf_counter() - start)
    ratio = expanded / len(data)
    return [
        (
            "hostile answer: eth_abi decode",
            slow,
            f"{len(data) / 1e3:.0f} kB in, {expanded / 1e6:.0f} MB of strings out ({ratio:.0f}x)",
        ),
        ("hostile answer: fast_abi refuses", fast, "values must not overlap"),
    ]


def node_rows(rpc_url: str, router: str, runs: int, root: Path) -> list[tuple[str, list[float], str]]:
    from function_node.keys import write_plaintext
    from function_node.signing import LocalSigner

    fxn = str(Path(sys.executable).parent / "fxn")
    cold: list[float] = []
    warm: list[float] = []
    static: list[float] = []
    for run in range(runs):
        home = root / f"node{run}"
        home.mkdir(parents=True)
        port = free_port()
        config = {
            "node": {"listenAddress": "127.0.0.1", "listenPort": port},
            "logger": {"format": "json"},
            "rpcProvider": rpc_url,
            "registry": {"routerSmartContractAddress": router},
        }
        (home / "config.yaml").write_text(yaml.safe_dump(config))
        backend = ManagedProcess(
            "backend",
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(backend_port := free_port())],
            root / f"backend{run}.log",
            port=backend_port,
        )
        models = {
            "models": [
                {
                    "name": "m",
                    "fxnId": "2",
                    "backends": [{"url": f"http://127.0.0.1:{backend_port}"}],
                    "healthCheck": {"path": "/", "interval": "1s"},
                }
            ]
        }
        (home / "backend.yaml").write_text(yaml.safe_dump(models))
        write_plaintext(home / "nodekey.json", LocalSigner.from_hex(NODE_KEY))
        with backend:
            # Cold: empty registry-cache, the first refresh must finish. Warm: the snapshot the cold
            # run saved is fresh, so the node serves from it and refreshes in the background.
            for samples in (cold, warm, static):
                if samples is static:  # the same node without chain registries: the baseline
                    del config["registry"], config["rpcProvider"]
                    (home / "config.yaml").write_text(yaml.safe_dump(config))
                node = ManagedProcess("node", [fxn, "--home", str(home), "start"], root / f"node{run}.log")
                start = time.perf_counter()
                node.start()
                try:
                    wait_ready(port, node)
                    samples.append(time.perf_counter() - start)
                finally:
                    node.stop()
    return [
        ("node start -> /ready 200, cold", cold, "fxn start, no snapshot: waits for the chain"),
        ("node start -> /ready 200, warm", warm, "fxn start, fresh snapshot in the home"),
        ("node start -> /ready 200, no chain", static, "the same node with static lists only (baseline)"),
    ]


def wait_ready(port: int, node: ManagedProcess) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if not node.running:
            raise RuntimeError(f"node exited:\n{node.tail()}")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", type=int, default=10_000)
    parser.add_argument("--gateways", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-node", action="store_true", help="skip the node start measurement")
    args = parser.parse_args()
    configure_logging("warn", "console")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with AnvilProcess(root / "anvil.log") as anvil:
            assert isinstance(anvil, AnvilProcess)
            router, setup_s = populate(anvil.rpc_url, args.providers, args.gateways)
            rows = asyncio.run(chain_rows(anvil.rpc_url, router, args.runs, root / "home"))
            rows += lookup_rows(args.providers)
            rows += hostile_rows(args.runs)
            if not args.no_node:
                rows += node_rows(anvil.rpc_url, router, min(args.runs, 3), root)
    print(
        f"\nsetup: deploy + register {args.providers} providers, {args.gateways} gateways: {setup_s:.1f} s\n"
    )
    print(f"{'measurement':<34} {'median':>12} {'min':>12} {'max':>12}  note")
    for label, samples, note in rows:
        med, lo, hi = stats(samples)
        unit, scale = ("µs", 1e6) if med < 1e-3 else ("ms", 1e3)
        cells = " ".join(f"{v * scale:>9.3f} {unit}" for v in (med, lo, hi))
        print(f"{label:<34} {cells}  {note}")
    print(f"\ncommand: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
