"""Doctor checks that talk to something: the RPC providers (and the clock against the chain), the
registries on chain, this node's own registration, and the Redis nonce store.

RPC URLs are only ever shown redacted: their path and credentials are where providers put API keys."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from function_node.doctor.framework import DoctorContext, Finding
from function_node.redact import redact_text, redact_url

__all__ = ["check_clock", "check_nonce_store", "check_registration", "check_registries", "check_rpc"]

_FUTURE_TOLERANCE_S: Final = 5.0  # a block up to this far in our future is rounding, not a slow clock
_BLOCK_KEY: Final = "latest_block"  # (redacted rpc url, block number, block time, our time when read)
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
        shown = redact_url(url)
        try:
            async with _client([url], ctx.timeout) as chain:
                chain_id = await chain.chain_id()
                number = await chain.block_number()
                block_time = await chain.latest_block_time()
        except ChainError as exc:
            findings.append(
                Finding.fail(
                    "rpc",
                    f"{shown} is unreachable: {str(exc).rsplit(f'{shown}: ', 1)[-1][:160]}",
                    "start the Ethereum node or fix rpcProvider in config.yaml; test it with "
                    "`curl -s -X POST -H 'Content-Type: application/json' --data "
                    '\'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}\' "$RPC_URL"` '
                    "(RPC_URL: that rpcProvider entry)",
                )
            )
            continue
        expected = ctx.settings.chain_id
        if expected and chain_id != expected:
            findings.append(
                Finding.fail(
                    "rpc",
                    f"{url} serves chain {chain_id}, not chainId {expected}: the node skips it",
                    f"point this rpcProvider URL at chain {expected}, or correct chainId in config.yaml",
                )
            )
            continue
        ctx.notes.setdefault(_RPC_KEY, url)
        ctx.notes.setdefault(_BLOCK_KEY, (shown, number, float(block_time), time.time()))
        findings.append(Finding.ok("rpc", f"{shown}: chain {chain_id}, block {number}"))
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


async def check_nonce_store(ctx: DoctorContext) -> Sequence[Finding]:
    """With ``nonceCache.backend: redis``, Redis answers a PING: while it does not, the node refuses
    every request (503 ``nonce_store_unavailable``)."""
    from function_node.errors import NonceStoreError
    from function_node.node.nonces_redis import RedisNonceStore

    if ctx.settings is None:
        return _skip("nonces", "config.yaml did not load")
    cache = ctx.settings.nonce_cache
    if cache.backend != "redis":
        return [Finding.ok("nonces", "memory nonce store (one process; --workers needs redis)")]
    shown = redact_url(cache.redis_url)
    store = RedisNonceStore(cache.redis_url, cache.ttl, socket_timeout=ctx.timeout)
    try:
        await store.ping()
    except NonceStoreError as exc:
        return [
            Finding.fail(
                "nonces",
                redact_text(str(exc)),
                "start Redis (or Valkey) or fix nonceCache.redisUrl in config.yaml; while it is down the "
                "node answers every request 503 nonce_store_unavailable",
            )
        ]
    finally:
        await store.close()
    return [Finding.ok("nonces", f"Redis at {shown} answers")]
