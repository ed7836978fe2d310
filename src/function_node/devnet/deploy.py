"""Deploy the four registry contracts to a (local) chain and manage their entries as the admin.

Used by the devnet, the integration tests and the registry benchmark. Synchronous on purpose: it runs
once at set-up (call it through ``asyncio.to_thread`` from async code). Transactions are signed
locally with the given key, so it works against any chain, not only anvil's unlocked accounts. The
deployer holds the registries' DEFAULT_ADMIN_ROLE and PAUSER_ROLE: it registers entries on others'
behalf (``registerBatchFor``) and pauses any entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import requests
from eth_abi.abi import decode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from function_node.chain.compiled import load_abi, load_bytecode
from function_node.chain.revert import decode_revert
from function_node.errors import ChainError

__all__ = [
    "DEV_DEPLOYER_KEY",
    "DEV_GATEWAY",
    "DEV_PROVIDER",
    "DEV_SCHEDULER",
    "Deployment",
    "ProviderSpec",
    "RegistryAdmin",
    "deploy_network",
    "gateway_id",
]

# Public, well-known keys/addresses of anvil's default mnemonic (accounts 0, 1, 2). Development only.
DEV_DEPLOYER_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_GATEWAY: Final = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # account 0
DEV_SCHEDULER: Final = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"  # account 1
DEV_PROVIDER: Final = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"  # account 2
_RECEIPT_TIMEOUT_S: Final = 120.0
_LOG_ERROR: Final = bytes(keccak(b"LogError(bytes,string)"))  # a batch entry that was skipped
_RPC_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider entry: ``id`` defaults to a readable id derived from owner and model."""

    owner: str
    model_id: int
    metadata: str = ""
    id: bytes = b""

    def entry_id(self) -> bytes:
        return self.id or f"provider:{self.owner.lower()}:{self.model_id}".encode()


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the contracts live (lower-case addresses) and the chain they live on."""

    rpc_url: str
    chain_id: int
    router: str
    gateway_registry: str
    provider_registry: str
    scheduler_registry: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rpcUrl": self.rpc_url,
            "chainId": self.chain_id,
            "router": self.router,
            "gatewayRegistry": self.gateway_registry,
            "providerRegistry": self.provider_registry,
            "schedulerRegistry": self.scheduler_registry,
        }


class RegistryAdmin:
    """Sends transactions to a deployed network as ``key``'s account (the contracts' admin, or an owner)."""

    def __init__(self, rpc_url: str, key: str, deployment: Deployment | None = None) -> None:
        # Our own session, so close() releases its sockets (web3 would keep a cached one open).
        self._session = requests.Session()
        self.w3 = Web3(
            HTTPProvider(rpc_url, request_kwargs={"timeout": _RPC_TIMEOUT_S}, session=self._session)
        )
        self.account = Account.from_key(key)
        self.deployment = deployment
        self._nonce: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address).lower()

    def _contract(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_abi(name))

    def _send(self, tx: dict[str, Any]) -> dict[str, Any]:
        if self._nonce is None:
            self._nonce = int(self.w3.eth.get_transaction_count(self.account.address, "pending"))
        tx = {**tx, "from": self.account.address, "nonce": self._nonce, "chainId": self.w3.eth.chain_id}
        try:
            tx.setdefault("gas", int(self.w3.eth.estimate_gas(tx)) * 12 // 10)  # type: ignore[arg-type]
            tx.setdefault("gasPrice", int(self.w3.eth.gas_price))
            signed = self.account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            self._nonce += 1
            receipt: dict[str, Any] = dict(
                self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=_RECEIPT_TIMEOUT_S)
            )
        except ContractLogicError as exc:
            self._nonce = None
            reason = decode_revert(exc.data).sentence()
            raise ChainError(f"transaction from {self.address} failed: {reason}") from exc
        except Exception as exc:  # web3 raises many unrelated types here; translate them once
            self._nonce = None
            raise ChainError(f"transaction from {self.address} failed: {exc}") from exc
        if receipt.get("status") != 1:
            raise ChainError(f"transaction {tx_hash.hex()} from {self.address} reverted")
        logs: list[Any] = list(receipt.get("logs") or [])
        skipped = [log for log in logs if log["topics"] and log["topics"][0] == _LOG_ERROR]
        if skipped:
            failed, message = decode(["bytes", "string"], bytes(skipped[0]["data"]))
            raise ChainError(
                f"{len(skipped)} of the entries were not registered; the first, {bytes(failed)!r}: {message}"
            )
        return receipt

    def _transact(self, name: str, address: str, fn: str, *args: Any) -> dict[str, Any]:
        data = self._contract(name, address).encode_abi(fn, args=list(args))
        return self._send({"to": Web3.to_checksum_address(address), "data": data})

    def deploy(self, name: str, *args: Any) -> str:
        factory = self.w3.eth.contract(abi=load_abi(name), bytecode=load_bytecode(name))
        data = factory.constructor(*args).data_in_transaction
        receipt = self._send({"data": data})
        return str(receipt["contractAddress"]).lower()

    def _need(self) -> Deployment:
        if self.deployment is None:
            raise ChainError("no deployment: call deploy_network first or pass deployment=")
        return self.deployment

    def _address_of(self, name: str) -> str:
        d = self._need()
        addresses = {
            "Router": d.router,
            "GatewayRegistry": d.gateway_registry,
            "ProviderRegistry": d.provider_registry,
            "SchedulerRegistry": d.scheduler_registry,
        }
        return addresses[name]

    def send(self, name: str, fn: str, *args: Any) -> dict[str, Any]:
        """Send ``fn(*args)`` to the deployed contract ``name`` as this key; the receipt (tests use the
        live ABI directly through this)."""
        return self._transact(name, self._address_of(name), fn, *args)

    def read(self, name: str, fn: str, *args: Any) -> Any:
        """``fn(*args)`` of the deployed contract ``name``, with eth_call from this key."""
        contract = self._contract(name, self._address_of(name))
        try:
            return contract.functions[fn](*args).call({"from": self.account.address})
        except ContractLogicError as exc:
            raise ChainError(f"{fn} reverted: {decode_revert(exc.data).sentence()}") from exc

    # Gateways ------------------------------------------------------------------------------------
    def register_gateways(self, owners: Sequence[str], metadata: str = "", batch: int = 200) -> None:
        reg = self._need().gateway_registry
        for start in range(0, len(owners), batch):
            chunk = [Web3.to_checksum_address(o) for o in owners[start : start + batch]]
            ids = [gateway_id(o) for o in chunk]
            self._transact("GatewayRegistry", reg, "registerBatchFor", chunk, ids, [metadata] * len(chunk))

    def set_gateway_paused(self, owner: str, paused: bool) -> None:
        """Pause or unpause the gateway entry of ``owner`` (as a PAUSER_ROLE holder)."""
        fn = "pause" if paused else "unpause"
        self._transact("GatewayRegistry", self._need().gateway_registry, fn, gateway_id(owner))

    # Providers -----------------------------------------------------------------------------------
    def register_providers(self, providers: Sequence[ProviderSpec], batch: int = 200) -> None:
        """Register entries on their owners' behalf (DEFAULT_ADMIN_ROLE): tests and benchmarks.

        The devnet registers its nodes as an operator would, with ``fxn provider register``'s code path.
        """
        reg = self._need().provider_registry
        for start in range(0, len(providers), batch):
            chunk = providers[start : start + batch]
            self._transact(
                "ProviderRegistry",
                reg,
                "registerBatchFor",
                [Web3.to_checksum_address(p.owner) for p in chunk],
                [p.entry_id() for p in chunk],
                [p.model_id for p in chunk],
                [p.metadata for p in chunk],
            )

    def set_provider_paused(self, entry_id: bytes, paused: bool) -> None:
        """Pause or unpause one provider id (as a PAUSER_ROLE holder)."""
        fn = "pause" if paused else "unpause"
        self._transact("ProviderRegistry", self._need().provider_registry, fn, entry_id)

    # Schedulers ----------------------------------------------------------------------------------
    def register_schedulers(self, schedulers: Iterable[str]) -> None:
        reg = self._need().scheduler_registry
        for address in schedulers:
            self._transact("SchedulerRegistry", reg, "registerScheduler", Web3.to_checksum_address(address))

    def set_scheduler_paused(self, address: str, paused: bool) -> None:
        fn = "pauseScheduler" if paused else "unpauseScheduler"
        self._transact(
            "SchedulerRegistry", self._need().scheduler_registry, fn, Web3.to_checksum_address(address)
        )

    def close(self) -> None:
        self._session.close()


def gateway_id(owner: str) -> bytes:
    """The id the admin helpers give a gateway entry: readable, one per owner."""
    return f"gateway:{owner.lower()}".encode()


def deploy_network(
    rpc_url: str,
    deployer_key: str = DEV_DEPLOYER_KEY,
    *,
    gateways: Sequence[str] = (DEV_GATEWAY,),
    schedulers: Sequence[str] = (DEV_SCHEDULER,),
    providers: Sequence[ProviderSpec] = (),
) -> Deployment:
    """Deploy Router + the three registries and register the given entries (the dev accounts by default).

    ``providers`` is empty by default: a provider entry names a model id, which only the caller knows
    (the devnet passes the node's address and its backend.yaml ``fxnId``).
    """
    admin = RegistryAdmin(rpc_url, deployer_key)
    try:
        gateway_registry = admin.deploy("GatewayRegistry")
        provider_registry = admin.deploy("ProviderRegistry")
        scheduler_registry = admin.deploy("SchedulerRegistry")
        router = admin.deploy(
            "Router",
            Web3.to_checksum_address(gateway_registry),
            Web3.to_checksum_address(provider_registry),
            Web3.to_checksum_address(scheduler_registry),
        )
        admin.deployment = Deployment(
            rpc_url=rpc_url,
            chain_id=int(admin.w3.eth.chain_id),
            router=router,
            gateway_registry=gateway_registry,
            provider_registry=provider_registry,
            scheduler_registry=scheduler_registry,
        )
        if gateways:
            admin.register_gateways(gateways)
        if providers:
            admin.register_providers(providers)
        if schedulers:
            admin.register_schedulers(schedulers)
        return admin.deployment
    finally:
        admin.close()
