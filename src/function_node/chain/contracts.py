"""Typed reads of the Router and the three registries (SPEC §8), ABI-encoded with eth_abi.

Calls are encoded by hand from the Solidity signatures rather than through web3's contract objects:
the node only reads a handful of functions, and the live network's contracts must decode with exactly
these shapes. The two big list answers go through :mod:`function_node.chain.fast_abi` (about ten
times faster than eth_abi on 10,000 providers); everything else through eth_abi. ``...Live``
functions are non-view in the real ABI; ``eth_call`` runs them read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_signature_to_4byte_selector

from function_node.chain.client import ChainClient, ChainRevertError
from function_node.chain.fast_abi import AbiDecodeError, decode_tuple_array
from function_node.errors import ChainError

__all__ = ["GatewayRecord", "NetworkReader", "ProviderRecord", "decode_gateways", "decode_providers"]

_GATEWAY: Final = "(address,bytes,uint256,string,bool)"
_PROVIDER: Final = "(address,bytes,uint256,uint256,string,bool)"
_ZERO_ADDRESS: Final = "0x" + "0" * 40
# The same shapes for the fast decoder (address, bytes, uint256, string, bool ...).
_GATEWAY_KINDS: Final = "abuso"
_PROVIDER_KINDS: Final = "abuuso"
_TYPE_NAMES: Final = {_GATEWAY_KINDS: f"{_GATEWAY}[]", _PROVIDER_KINDS: f"{_PROVIDER}[]"}


def _selector(signature: str) -> bytes:
    return bytes(function_signature_to_4byte_selector(signature))


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    owner: str  # lower-case 0x address
    id: bytes
    registered_at: int
    metadata: str
    paused: bool


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    owner: str  # lower-case 0x address
    id: bytes
    model_id: int
    registered_at: int
    metadata: str
    paused: bool


def _decode(types: Sequence[str], data: bytes, what: str, at: str) -> tuple[Any, ...]:
    if not data:
        # An address without code answers eth_call with empty bytes instead of reverting.
        raise ChainError(f"{what}: no contract answered at {at}; check registry.routerSmartContractAddress")
    try:
        return tuple(decode(list(types), data))
    except (DecodingError, ValueError, OverflowError) as exc:
        raise ChainError(f"{what} at {at}: the answer does not decode as {', '.join(types)}: {exc}") from exc


def _rows(data: bytes, kinds: str, what: str, at: str) -> list[tuple[Any, ...]]:
    if not data:
        raise ChainError(f"{what}: no contract answered at {at}; check registry.routerSmartContractAddress")
    try:
        return decode_tuple_array(data, kinds)
    except AbiDecodeError as exc:
        raise ChainError(f"{what} at {at}: the answer is not a valid {_TYPE_NAMES[kinds]}: {exc}") from exc


def decode_gateways(data: bytes, at: str = "?") -> list[GatewayRecord]:
    rows = _rows(data, _GATEWAY_KINDS, "getActiveGatewaysLive()", at)
    return [GatewayRecord(o, i, r, m, p) for o, i, r, m, p in rows]


def decode_providers(data: bytes, at: str = "?") -> list[ProviderRecord]:
    rows = _rows(data, _PROVIDER_KINDS, "getActiveProvidersLive()", at)
    return [ProviderRecord(o, i, mid, r, m, p) for o, i, mid, r, m, p in rows]


class NetworkReader:
    """Reads the registries reachable from one Router (and an optional scheduler registry)."""

    def __init__(self, client: ChainClient, router: str, scheduler_registry: str = "") -> None:
        self.client = client
        self.router = router.lower()
        self.scheduler_registry_override = scheduler_registry.lower()

    async def _address(self, at: str, signature: str) -> str:
        data = await self.client.call(at, _selector(signature), signature)
        (value,) = _decode(["address"], data, signature, at)
        return str(value).lower()

    async def gateway_registry(self) -> str:
        return await self._address(self.router, "gatewayRegistry()")

    async def provider_registry(self) -> str:
        return await self._address(self.router, "providerRegistry()")

    async def scheduler_registry(self) -> str:
        """The configured scheduler registry, else the Router's; "" if the Router has none (live network)."""
        if self.scheduler_registry_override:
            return self.scheduler_registry_override
        try:
            address = await self._address(self.router, "schedulerRegistry()")
        except ChainRevertError:
            return ""  # the live network's Router has no schedulerRegistry()
        return "" if address == _ZERO_ADDRESS else address

    async def active_gateways(self) -> list[GatewayRecord]:
        at = await self.gateway_registry()
        data = await self.client.call(at, _selector("getActiveGatewaysLive()"), "getActiveGatewaysLive()")
        return decode_gateways(data, at)

    async def active_providers(self) -> list[ProviderRecord]:
        at = await self.provider_registry()
        data = await self.client.call(at, _selector("getActiveProvidersLive()"), "getActiveProvidersLive()")
        return decode_providers(data, at)

    async def active_schedulers(self) -> list[str]:
        """Active scheduler addresses; empty when there is no scheduler registry."""
        at = await self.scheduler_registry()
        if not at:
            return []
        data = await self.client.call(at, _selector("getActiveSchedulers()"), "getActiveSchedulers()")
        (rows,) = _decode(["address[]"], data, "getActiveSchedulers()", at)
        return [str(a).lower() for a in rows]

    async def provider_ids_by_owner(self, owner: str, at: str = "") -> list[bytes]:
        """Every provider id ``owner`` holds, paused ones included (``at``: the registry, if known)."""
        at = at or await self.provider_registry()
        signature = "getProviderIdsByOwner(address)"
        data = await self.client.call(at, _selector(signature) + encode(["address"], [owner]), signature)
        (rows,) = _decode(["bytes[]"], data, signature, at)
        return [bytes(r) for r in rows]

    async def provider(self, entry_id: bytes, at: str = "") -> ProviderRecord:
        at = at or await self.provider_registry()
        signature = "getProvider(bytes)"
        data = await self.client.call(at, _selector(signature) + encode(["bytes"], [entry_id]), signature)
        (row,) = _decode([_PROVIDER], data, signature, at)
        o, i, mid, r, m, p = row
        return ProviderRecord(str(o).lower(), bytes(i), int(mid), int(r), str(m), bool(p))

    async def _provider_bool(self, signature: str, entry_id: bytes, at: str) -> bool:
        data = await self.client.call(at, _selector(signature) + encode(["bytes"], [entry_id]), signature)
        (value,) = _decode(["bool"], data, signature, at)
        return bool(value)

    async def provider_registered(self, entry_id: bytes, at: str = "") -> bool:
        return await self._provider_bool("registered(bytes)", entry_id, at or await self.provider_registry())

    async def provider_active(self, entry_id: bytes, at: str = "") -> bool:
        return await self._provider_bool("active(bytes)", entry_id, at or await self.provider_registry())

    async def provider_entries(
        self, ids: Sequence[bytes], at: str
    ) -> list[tuple[ProviderRecord, bool, bool]]:
        """(record, registered, active) of each id, read in JSON-RPC batches (three calls per id)."""
        calls: list[tuple[str, bytes]] = []
        for entry_id in ids:
            argument = encode(["bytes"], [entry_id])
            calls += [
                (at, _selector(s) + argument)
                for s in ("getProvider(bytes)", "registered(bytes)", "active(bytes)")
            ]
        answers = await self.client.call_batch(calls, "getProvider(bytes), registered(bytes), active(bytes)")
        out: list[tuple[ProviderRecord, bool, bool]] = []
        for index in range(0, len(answers), 3):
            (row,) = _decode([_PROVIDER], answers[index], "getProvider(bytes)", at)
            (registered,) = _decode(["bool"], answers[index + 1], "registered(bytes)", at)
            (active,) = _decode(["bool"], answers[index + 2], "active(bytes)", at)
            o, i, mid, r, m, p = row
            record = ProviderRecord(str(o).lower(), bytes(i), int(mid), int(r), str(m), bool(p))
            out.append((record, bool(registered), bool(active)))
        return out

    async def provider_metadata_limit(self, at: str = "") -> int | None:
        """``MAX_METADATA_LENGTH()`` of the provider registry; None if it publishes no limit."""
        at = at or await self.provider_registry()
        signature = "MAX_METADATA_LENGTH()"
        try:
            data = await self.client.call(at, _selector(signature), signature)
        except ChainRevertError:
            return None
        if len(data) != 32:
            return None
        return int.from_bytes(data, "big")
