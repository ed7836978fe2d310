"""Doctor checks that talk to something: the RPC providers (and the clock against the chain), the
registries on chain, this node's own registration, and each model backend."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from function_node.doctor.framework import DoctorContext, Finding

__all__ = ["check_backends", "check_clock", "check_registration", "check_registries", "check_rpc"]

_FUTURE_TOLERANCE_S: Final = 5.0  # a block up to this far in our future is rounding, not a slow clock
_BLOCK_KEY: Final = "latest_block"  # (rpc url, block number, block timestamp, our time when read)
_RPC_KEY: Final = "rpc_url"


def _client(urls: Sequence[str], seconds: float) -> Any:
    """The project's chain client on ``urls``, without retries: the doctor reports, it does not insist."""
    from function_node.chain.client import ChainClient

    return ChainClient(list(urls), timeout=seconds, retries=0)


def _skip(check: str, why: str) -> list[Finding]:
    return [Finding.warn(check, f"skipped: {why}", "fix the failures above first")]


async def check_rpc(ctx: DoctorContext) -> Sequence[Finding]:
    """Every rpcProvider URL answers eth_getBlockByNumber("latest")."""
    if ctx.settings is None:
        return _skip("rpc", "config.yaml did not load")
    urls = ctx.settings.rpc_provider
    if not urls:
        static = ctx.settings.registry.static
        if static.gateways or static.schedulers or ctx.settings.scheduler_address:
            return [Finding.ok("rpc", "no rpcProvider: the node runs on the static lists of config.yaml")]
        return [
            Finding.fail(
                "rpc",
                "no rpcProvider and no static lists: the node would admit no caller",
                "set rpcProvider (and registry.routerSmartContractAddress) in config.yaml",
            )
        ]
    findings: list[Finding] = []
    from function_node.errors import ChainError

    for url in urls:
        try:
            async with _client([url], ctx.timeout) as chain:
                chain_id = await chain.chain_id()
                number = await chain.block_number()
                block_time = await chain.latest_block_time()
        except ChainError as exc:
            findings.append(
                Finding.fail(
                    "rpc",
                    f"{url} is unreachable: {str(exc).rsplit(f'{url}: ', 1)[-1][:160]}",
                    "start the Ethereum node or fix rpcProvider in config.yaml; test it with "
                    "`curl -s -X POST -H 'Content-Type: application/json' --data "
                    f'\'{{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}}\' {url}`',
                )
            )
            continue
        ctx.notes.setdefault(_RPC_KEY, url)
        ctx.notes.setdefault(_BLOCK_KEY, (url, number, float(block_time), time.time()))
        findings.append(Finding.ok("rpc", f"{url}: chain {chain_id}, block {number}"))
    return findings


async def check_clock(ctx: DoctorContext) -> Sequence[Finding]:
    """Our clock against the chain's latest block time.

    A block can only be older than now (an idle chain mines no blocks), so a block from our future
    proves our clock is slow; a block much older than ``auth.maxClockSkew`` means either our clock is
    fast or the chain is idle, and we say both.
    """
    latest = ctx.notes.get(_BLOCK_KEY)
    if ctx.settings is None or not isinstance(latest, tuple):
        return _skip("clock", "no RPC provider answered")
    url, number, block_time, now = latest
    skew = ctx.settings.auth.max_clock_skew
    age = now - block_time
    if age < -_FUTURE_TOLERANCE_S:
        return [
            Finding.fail(
                "clock",
                f"this machine's clock is at least {-age:.0f}s behind block {number} of {url}",
                "enable time sync (timedatectl set-ntp true, or chrony); gateways' timestamps will look "
                "like they come from the future",
            )
        ]
    if age > skew:
        return [
            Finding.warn(
                "clock",
                f"the latest block is {age:.0f}s old (more than auth.maxClockSkew {skew:.0f}s): either the "
                "chain is idle or this clock is fast",
                "check `timedatectl` shows 'System clock synchronized: yes'",
            )
        ]
    return [Finding.ok("clock", f"within {max(age, 0.0):.0f}s of block {number}'s time")]


async def check_registries(ctx: DoctorContext) -> Sequence[Finding]:
    """The Router resolves, and the gateway and provider registries answer with their active entries."""
    from function_node.chain.contracts import NetworkReader
    from function_node.errors import ChainError

    url = ctx.notes.get(_RPC_KEY)
    router = ctx.settings.registry.router_smart_contract_address if ctx.settings else ""
    if not router:
        return [Finding.ok("registries", "no routerSmartContractAddress: static lists only")]
    if not isinstance(url, str):
        # The chain cannot be asked, but the node's cached copies say how long it can still serve.
        return [*_skip("registries", "no RPC provider answered"), *_snapshot_freshness(ctx)]
    findings: list[Finding] = []
    async with _client([url], ctx.timeout) as chain:
        reader = NetworkReader(chain, router)
        for name, read in (("gateway", reader.active_gateways), ("provider", reader.active_providers)):
            try:
                entries = await read()
            except ChainError as exc:
                findings.append(
                    Finding.fail(
                        "registries",
                        f"the {name} registry could not be read: {exc}",
                        "check registry.routerSmartContractAddress and that rpcProvider is the right chain",
                    )
                )
                continue
            active = sum(1 for e in entries if not e.paused)
            findings.append(Finding.ok("registries", f"{name} registry: {active} active entries"))
            ctx.notes[f"{name}_registry_ok"] = True
    findings.extend(_snapshot_freshness(ctx))
    return findings


def _snapshot_freshness(ctx: DoctorContext) -> list[Finding]:
    """The node's own last good copy of each registry (``<home>/registry-cache``) against maxStaleness:
    older than that, the running node has stopped trusting it and fails closed for that registry."""
    import orjson

    from function_node.chain.snapshot import SNAPSHOT_DIR

    if ctx.settings is None:
        return []
    findings: list[Finding] = []
    for name, poll in (
        ("gateway", ctx.settings.registry.gateway),
        ("provider", ctx.settings.registry.provider),
        ("scheduler", ctx.settings.registry.scheduler),
    ):
        path = ctx.home / SNAPSHOT_DIR / f"{name}.json"
        try:
            fetched_at = float(orjson.loads(path.read_bytes())["fetchedAt"])
        except FileNotFoundError:
            continue  # the node has not run against this chain yet: nothing to judge
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            findings.append(
                Finding.warn(
                    "registries", f"{path} is unreadable", "delete it; the node rewrites it on refresh"
                )
            )
            continue
        age = time.time() - fetched_at
        if age > poll.max_staleness:
            findings.append(
                Finding.fail(
                    "registries",
                    f"the node's cached {name} registry is {age:.0f}s old, past maxStaleness "
                    f"({poll.max_staleness:.0f}s): a running node refuses those callers",
                    "make the RPC reachable (see the rpc findings) and keep the node running so it refreshes",
                )
            )
        else:
            findings.append(Finding.ok("registries", f"the node's cached {name} registry is {age:.0f}s old"))
    return findings


async def check_registration(ctx: DoctorContext) -> Sequence[Finding]:
    """This node's address is an active provider, and for which model ids."""
    from function_node.chain.contracts import NetworkReader

    url = ctx.notes.get(_RPC_KEY)
    if not ctx.address:
        return _skip("registration", "the key file could not be read")
    if not isinstance(url, str) or not ctx.notes.get("provider_registry_ok") or ctx.settings is None:
        return _skip("registration", "the provider registry could not be read")
    async with _client([url], ctx.timeout) as chain:
        reader = NetworkReader(chain, ctx.settings.registry.router_smart_contract_address)
        ids = await reader.provider_ids_by_owner(ctx.address)
        providers = [await reader.provider(pid) for pid in ids]
    active = [p for p in providers if not p.paused]
    if not active:
        return [
            Finding.warn(
                "registration",
                f"{ctx.address} is not an active provider",
                "register this address in the network's provider registry (the devnet does it for its "
                "nodes, see docs/devnet.md); gateways will not route to this node until then",
            )
        ]
    models = sorted({p.model_id for p in active})
    return [Finding.ok("registration", f"{ctx.address} is an active provider for model ids {models}")]


async def check_backends(ctx: DoctorContext) -> Sequence[Finding]:
    """Each backend of each model answers its health-check path with a 2xx."""
    import aiohttp

    from function_node.errors import ConfigError

    if ctx.backends is None:
        return _skip("backends", "backend.yaml did not load")
    if not ctx.backends.models:
        return [Finding.warn("backends", "backend.yaml lists no model", "add a model with its backend URL")]
    findings: list[Finding] = []
    timeout = aiohttp.ClientTimeout(total=ctx.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for model in ctx.backends.models:
            for backend in model.backends:
                target = backend.base_url + model.health_check.path
                try:
                    headers = backend.resolved_headers()
                    async with session.get(target, headers=headers) as resp:
                        status = resp.status
                except ConfigError as exc:
                    findings.append(
                        Finding.fail("backends", str(exc.problems[0].message), exc.problems[0].fix)
                    )
                    continue
                except (aiohttp.ClientError, TimeoutError) as exc:
                    findings.append(
                        Finding.fail(
                            "backends",
                            f"{model.name}: {target} is unreachable ({type(exc).__name__})",
                            f"start the model server at {backend.base_url} or fix its url in backend.yaml",
                        )
                    )
                    continue
                if 200 <= status < 300:
                    findings.append(Finding.ok("backends", f"{model.name}: {target} answered {status}"))
                else:
                    findings.append(
                        Finding.fail(
                            "backends",
                            f"{model.name}: {target} answered {status}",
                            "check the backend's API key (apiKeyEnv) and healthCheck.path in backend.yaml",
                        )
                    )
    return findings
