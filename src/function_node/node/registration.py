"""Is this node's address an active provider on chain, and for which model ids?

Used at start (logged, with a warning when backend.yaml's ``fxnId`` values and the chain disagree)
and by ``fxn status``. The chain lookup (``getProviderIdsByOwner`` + ``getProvider``) also sees
paused entries; when the RPC is unreachable the answer falls back to the cached active entries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from function_node.chain.contracts import NetworkReader, ProviderRecord
from function_node.chain.snapshot import RegistryEntry
from function_node.logs import get_logger

__all__ = ["Registration", "log_registration", "lookup_registration", "registration_from_entries"]


@dataclass(frozen=True, slots=True)
class Registration:
    """The provider entries owned by ``address``; ``source`` is "chain" or "cache"."""

    address: str
    entries: tuple[ProviderRecord, ...]
    source: str

    @property
    def registered(self) -> bool:
        return bool(self.entries)

    @property
    def active(self) -> bool:
        return any(not e.paused for e in self.entries)

    @property
    def active_model_ids(self) -> list[str]:
        return sorted({str(e.model_id) for e in self.entries if not e.paused}, key=_numeric)

    @property
    def paused_model_ids(self) -> list[str]:
        return sorted({str(e.model_id) for e in self.entries if e.paused}, key=_numeric)

    def mismatch(self, configured: Collection[str]) -> tuple[list[str], list[str]]:
        """(configured fxnIds with no active entry, active on-chain model ids not in backend.yaml)."""
        active = set(self.active_model_ids)
        wanted = {str(m).strip() for m in configured if str(m).strip()}
        return sorted(wanted - active, key=_numeric), sorted(active - wanted, key=_numeric)


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 256, value)


async def lookup_registration(reader: NetworkReader, address: str) -> Registration:
    """Read every provider entry of ``address`` from chain (paused ones included). Raises ChainError."""
    owner = address.lower()
    ids = await reader.provider_ids_by_owner(owner)
    records = [await reader.provider(entry_id) for entry_id in ids]
    return Registration(owner, tuple(records), "chain")


def registration_from_entries(address: str, entries: Iterable[RegistryEntry]) -> Registration:
    """The same answer from the cached registry (active entries only; paused ones are not cached)."""
    owner = address.lower()
    records = tuple(
        ProviderRecord(
            owner=owner,
            id=bytes.fromhex(e.id.removeprefix("0x")),
            model_id=e.model_id if e.model_id is not None else 0,
            registered_at=0,
            metadata=e.metadata,
            paused=False,
        )
        for e in entries
        if e.owner == owner
    )
    return Registration(owner, records, "cache")


def log_registration(registration: Registration, configured_model_ids: Collection[str]) -> None:
    """One info line with the registration; a warning for each way it disagrees with backend.yaml."""
    log = get_logger("fxn.registration").bind(address=registration.address, source=registration.source)
    if not registration.active:
        log.warning(
            "this node's address is not an active provider on chain; gateways will not route to it",
            paused_model_ids=registration.paused_model_ids,
            fix="register the address in the ProviderRegistry (or unpause its entries)",
        )
        return
    log.info(
        "this node is an active provider",
        model_ids=registration.active_model_ids,
        paused_model_ids=registration.paused_model_ids,
    )
    missing, unconfigured = registration.mismatch(configured_model_ids)
    if missing:
        log.warning(
            "backend.yaml serves fxnId(s) this address is not registered for on chain",
            fxn_ids=missing,
            fix="register these model ids for the node's address, or remove fxnId from backend.yaml",
        )
    if unconfigured:
        log.warning(
            "the address is registered on chain for model id(s) that no backend.yaml model serves",
            model_ids=unconfigured,
            fix="add a model with that fxnId to backend.yaml, or pause those entries",
        )
