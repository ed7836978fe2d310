"""The provider's on-chain lifecycle (SPEC §8.1): register, update, pause and unpause provider ids.

No CLI here: ``fxn provider`` and ``fxn devnet up`` both call :func:`register_provider`,
:func:`update_providers` and :func:`set_paused`, so the devnet proves the operator's path. Each of them first
reads the chain and plans one :class:`Step` per id; a step that has nothing to do (registered already,
paused already, metadata unchanged) says so and sends nothing. A step that sends is prepared in full —
chain id, gas estimate, EIP-1559 fees, balance — before the key is even decrypted, so ``dry_run`` runs
every check and a refusal costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from function_node.chain.client import ChainClient
from function_node.chain.compiled import load_abi
from function_node.chain.contracts import NetworkReader
from function_node.chain.provider_status import EntryStatus, read_entry_statuses
from function_node.chain.revert import role_name
from function_node.chain.transactions import (
    Mined,
    PreparedCall,
    TransactionRevertedError,
    TransactionSender,
    connect,
)
from function_node.config.settings import Settings
from function_node.errors import ConfigError, ConfigProblem, TransactionError, UsageError
from function_node.signing import LocalSigner

__all__ = [
    "MAX_MODEL_ID",
    "Operator",
    "ProviderLifecycle",
    "Reporter",
    "SendOptions",
    "Step",
    "open_lifecycle",
    "parse_id",
    "parse_model_id",
    "provider_status",
    "register_provider",
    "set_paused",
    "update_providers",
]

MAX_MODEL_ID: Final = 2**256 - 1
RPC_TIMEOUT_S: Final = 10.0
_REGISTRY: Final = "ProviderRegistry"


def parse_model_id(text: str) -> int:
    """``--model-id``: a non-negative decimal integer that fits a uint256."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or int(value) > MAX_MODEL_ID:
        raise UsageError(f"--model-id must be a non-negative integer such as 2, not {text!r}")
    return int(value)


def parse_id(text: str) -> bytes:
    """``--id``: 0x-hex bytes, at least one."""
    value = text.strip()
    body = value[2:] if value[:2].lower() == "0x" else ""
    try:
        raw = bytes.fromhex(body) if body and len(body) % 2 == 0 else b""
    except ValueError:
        raw = b""
    if not raw:
        raise UsageError(f"--id must be 0x followed by an even number of hex digits, not {text!r}")
    return raw


def hex_id(entry_id: bytes) -> str:
    return "0x" + entry_id.hex()


@dataclass(frozen=True, slots=True)
class SendOptions:
    dry_run: bool = False
    confirmations: int = 1
    timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class Step:
    """One id's planned change; ``call`` is None when there is nothing to send (``summary`` says why)."""

    entry_id: bytes
    summary: str
    call: PreparedCall | None = None


class Reporter(Protocol):
    """How a caller shows progress: the CLI prints and spins, the devnet stays quiet."""

    def planned(self, step: Step, dry_run: bool) -> None: ...

    def waiting(self, tx_hash: str, confirmations: int) -> AbstractContextManager[object]: ...

    def mined(self, step: Step, mined: Mined, events: list[str]) -> None: ...


class QuietReporter:
    """Remembers what happened instead of printing it (the devnet's summary says it in one row)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def planned(self, step: Step, dry_run: bool) -> None:
        self.lines.append(step.summary)

    def waiting(self, tx_hash: str, confirmations: int) -> AbstractContextManager[object]:
        self.lines.append(f"sent {tx_hash}")
        return contextlib.nullcontext()

    def mined(self, step: Step, mined: Mined, events: list[str]) -> None:
        self.lines.append(f"{hex_id(step.entry_id)}: block {mined.block}, events {', '.join(events)}")


class ProviderLifecycle:
    """The ProviderRegistry reached through the Router, as seen and changed by ``owner``'s key."""

    def __init__(self, client: ChainClient, chain_id: int, registry: str, owner: str) -> None:
        self.client = client
        self.chain_id = chain_id
        self.registry = registry
        self.owner = owner.lower()
        self.reader = NetworkReader(client, "")
        w3 = client.web3()
        self.contract: Any = w3.eth.contract(
            address=w3.to_checksum_address(registry), abi=load_abi(_REGISTRY)
        )
        self.sender = TransactionSender(w3, client.urls[0], owner, chain_id)
        self._topics = {
            "0x" + bytes(w3.keccak(text=_signature(e))).hex(): str(e["name"])
            for e in load_abi(_REGISTRY)
            if e.get("type") == "event"
        }

    @property
    def default_id(self) -> bytes:
        """The node's address as 20 bytes: the id ``register`` uses without ``--id``."""
        return bytes.fromhex(self.owner.removeprefix("0x"))

    async def own_ids(self) -> list[bytes]:
        return await self.reader.provider_ids_by_owner(self.owner, self.registry)

    async def targets(self, entry_id: bytes | None) -> list[bytes]:
        """``entry_id`` alone, else every id the key owns; TransactionError when it owns none."""
        if entry_id is not None:
            return [entry_id]
        ids = await self.own_ids()
        if not ids:
            raise TransactionError(
                f"the key {self.owner} owns no provider id in the ProviderRegistry at {self.registry}; "
                "register one first with `fxn provider register --model-id N`"
            )
        return ids

    async def _check_length(self, metadata: str) -> None:
        limit = await self.reader.provider_metadata_limit(self.registry)
        size = len(metadata.encode())
        if limit is not None and size > limit:
            raise UsageError(
                f"the metadata is {size} bytes, more than the {limit} (MAX_METADATA_LENGTH) the "
                f"ProviderRegistry at {self.registry} accepts; shorten --metadata"
            )

    async def _prepare(self, function: str, args: Sequence[Any], doing: str, owner: str) -> PreparedCall:
        try:
            return await self.sender.prepare(self.contract, _REGISTRY, function, args)
        except TransactionRevertedError as exc:
            raise TransactionRevertedError(
                f"{doing} would be refused: {exc.revert.sentence()}{_hint(exc, owner)}", exc.revert
            ) from exc

    async def plan_register(self, entry_id: bytes, model_id: int, metadata: str) -> Step:
        shown = hex_id(entry_id)
        if await self.reader.provider_registered(entry_id, self.registry):
            record = await self.reader.provider(entry_id, self.registry)
            if record.owner != self.owner:
                raise TransactionError(
                    f"provider id {shown} is registered to another key ({record.owner}); pick another --id"
                )
            if record.model_id != model_id:
                raise TransactionError(
                    f"provider id {shown} is registered for model id {record.model_id}, not {model_id}, and "
                    "a model id cannot be changed: register a new id with --id"
                )
            note = (
                ""
                if record.metadata == metadata
                else "; its metadata differs: `fxn provider update` changes it"
            )
            return Step(entry_id, f"provider id {shown} is registered for model id {model_id} already{note}")
        await self._check_length(metadata)
        call = await self._prepare(
            "register(bytes,uint256,string)",
            [entry_id, model_id, metadata],
            f"registering provider id {shown}",
            self.owner,
        )
        return Step(entry_id, f"registering provider id {shown} for model id {model_id}", call)

    async def _registered(self, entry_id: bytes) -> Any:
        if not await self.reader.provider_registered(entry_id, self.registry):
            raise TransactionError(
                f"provider id {hex_id(entry_id)} is not registered in the ProviderRegistry at {self.registry}"
            )
        return await self.reader.provider(entry_id, self.registry)

    async def plan_update(self, entry_id: bytes, metadata: str) -> Step:
        shown = hex_id(entry_id)
        record = await self._registered(entry_id)
        if record.metadata == metadata:
            return Step(entry_id, f"provider id {shown} has this metadata already")
        await self._check_length(metadata)
        call = await self._prepare(
            "updateMetadata(bytes,string)",
            [entry_id, metadata],
            f"updating provider id {shown}",
            record.owner,
        )
        return Step(entry_id, f"updating the metadata of provider id {shown}", call)

    async def plan_pause(self, entry_id: bytes, pause: bool) -> Step:
        shown = hex_id(entry_id)
        record = await self._registered(entry_id)
        verb = "pause" if pause else "unpause"
        if record.paused == pause:
            return Step(entry_id, f"provider id {shown} is {'paused' if pause else 'not paused'} already")
        call = await self._prepare(
            f"{verb}(bytes)", [entry_id], f"{verb[:-1]}ing provider id {shown}", record.owner
        )
        return Step(entry_id, f"{verb[:-1]}ing provider id {shown} (model id {record.model_id})", call)

    async def run(
        self,
        steps: Sequence[Step],
        signer: Callable[[], LocalSigner],
        options: SendOptions,
        reporter: Reporter,
    ) -> list[Mined]:
        """Send the steps that have a call, one after another; the key is loaded only if one has."""
        mined: list[Mined] = []
        key: LocalSigner | None = None
        for step in steps:
            reporter.planned(step, options.dry_run)
            if step.call is None or options.dry_run:
                continue
            if key is None:
                key = signer()
            call = step.call
            if mined:  # an earlier step took the nonce it was prepared with: prepare it again
                call = await self.sender.prepare(self.contract, _REGISTRY, call.function, call.args)
            tx_hash = await self.sender.send(call, key.private_key)
            with reporter.waiting(tx_hash, options.confirmations):
                done = await self.sender.wait(
                    call, tx_hash, confirmations=options.confirmations, within=options.timeout
                )
            mined.append(done)
            reporter.mined(step, done, self.event_names(done.logs))
        return mined

    def event_names(self, logs: Sequence[Any]) -> list[str]:
        """The registry's events in a receipt's logs, by name, in order."""
        names: list[str] = []
        for log in logs:
            topics = log.get("topics") or []
            if topics and str(log.get("address", "")).lower() == self.registry:
                names.append(self._topics.get("0x" + bytes(topics[0]).hex(), "?"))
        return names

    async def statuses(self, probe: bool = True) -> list[EntryStatus]:
        return await read_entry_statuses(self.reader, self.owner, probe=probe, at=self.registry)


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(str(i['type']) for i in item['inputs'])})"


def _hint(exc: TransactionRevertedError, owner: str) -> str:
    revert = exc.revert
    if revert.name != "AccessControlUnauthorizedAccount" or len(revert.args) != 2:
        return ""
    needed = role_name(revert.args[1])
    if needed == "PAUSER_ROLE":
        return f"; only the id's owner ({owner}) or a PAUSER_ROLE holder may pause or unpause it"
    if needed == "DEFAULT_ADMIN_ROLE":
        return f"; only the id's owner ({owner}) or a DEFAULT_ADMIN_ROLE holder may change it"
    return ""


@contextlib.asynccontextmanager
async def open_lifecycle(
    settings: Settings, owner: str, *, rpc_timeout: float = RPC_TIMEOUT_S
) -> AsyncIterator[ProviderLifecycle]:
    """Connect (chain id checked), find the ProviderRegistry through the Router, close on exit."""
    router = settings.registry.router_smart_contract_address
    if not settings.rpc_provider or not router:
        missing = "rpcProvider" if not settings.rpc_provider else "registry.routerSmartContractAddress"
        raise ConfigError(
            ConfigProblem(
                "config.yaml",
                None,
                f"{missing} is empty",
                "set rpcProvider and registry.routerSmartContractAddress (docs/registries.md)",
            )
        )
    client, chain_id = await connect(settings.rpc_provider, settings.chain_id, call_timeout=rpc_timeout)
    try:
        registry = await NetworkReader(client, router).provider_registry()
        yield ProviderLifecycle(client, chain_id, registry, owner)
    finally:
        await client.close()


@dataclass(frozen=True, slots=True)
class Operator:
    """Who acts, and how: the node's settings and key (loaded only to sign), the options, the reporter."""

    settings: Settings
    owner: str
    signer: Callable[[], LocalSigner]
    options: SendOptions = field(default_factory=SendOptions)
    reporter: Reporter = field(default_factory=QuietReporter)


async def _plan_and_run(
    operator: Operator, plan: Callable[[ProviderLifecycle], Awaitable[list[Step]]]
) -> list[Mined]:
    async with open_lifecycle(operator.settings, operator.owner) as lifecycle:
        steps = await plan(lifecycle)
        return await lifecycle.run(steps, operator.signer, operator.options, operator.reporter)


async def register_provider(
    operator: Operator, *, model_id: int, metadata: str, entry_id: bytes | None = None
) -> list[Mined]:
    """``fxn provider register``: one id (default: the node's address) for ``model_id``."""

    async def plan(lifecycle: ProviderLifecycle) -> list[Step]:
        return [await lifecycle.plan_register(entry_id or lifecycle.default_id, model_id, metadata)]

    return await _plan_and_run(operator, plan)


async def update_providers(
    operator: Operator, *, metadata: str, entry_id: bytes | None = None
) -> list[Mined]:
    """``fxn provider update``: new metadata on ``entry_id``, else on every id the key owns."""

    async def plan(lifecycle: ProviderLifecycle) -> list[Step]:
        return [await lifecycle.plan_update(i, metadata) for i in await lifecycle.targets(entry_id)]

    return await _plan_and_run(operator, plan)


async def set_paused(operator: Operator, *, pause: bool, entry_id: bytes | None = None) -> list[Mined]:
    """``fxn provider pause`` / ``unpause``: ``entry_id``, else every id the key owns."""

    async def plan(lifecycle: ProviderLifecycle) -> list[Step]:
        return [await lifecycle.plan_pause(i, pause) for i in await lifecycle.targets(entry_id)]

    return await _plan_and_run(operator, plan)


async def provider_status(
    settings: Settings, owner: str, *, probe: bool = True
) -> tuple[str, list[EntryStatus]]:
    """``fxn provider status``: the registry's address and every id ``owner`` holds."""
    async with open_lifecycle(settings, owner) as lifecycle:
        return lifecycle.registry, await lifecycle.statuses(probe)
