"""A fixed allow-list from config (``registry.static``, ``schedulerAddress``)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from function_node.registry.base import RegistryStatus
from function_node.signing import normalize_address

__all__ = ["StaticRegistry"]


class StaticRegistry:
    """Always loaded, never stale."""

    def __init__(self, name: str, addresses: Iterable[str]) -> None:
        self.name = name
        self._addresses = frozenset(normalize_address(a) for a in addresses)
        # Built once: the caller directory asks for the status on every request.
        self._status = RegistryStatus(
            name=name,
            source="static",
            loaded=True,
            stale=False,
            entries=len(self._addresses),
            last_success=time.time(),
        )

    def contains(self, address: str) -> bool:
        return address in self._addresses

    def addresses(self) -> frozenset[str]:
        return self._addresses

    def status(self) -> RegistryStatus:
        return self._status
