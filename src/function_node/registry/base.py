"""The Registry protocol: a set of addresses that is loaded, fresh or stale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Registry", "RegistryStatus"]


@dataclass(frozen=True, slots=True)
class RegistryStatus:
    """What /ready, `fxn status` and the metrics say about one registry."""

    name: str
    source: str  # "static", "chain", "chain+static"
    loaded: bool
    stale: bool
    entries: int
    last_success: float | None  # unix seconds of the last successful load
    error: str = ""  # the last refresh error, if the last refresh failed

    @property
    def usable(self) -> bool:
        return self.loaded and not self.stale


@runtime_checkable
class Registry(Protocol):
    """A set of lower-case ``0x`` addresses. ``contains`` is on the request path: keep it O(1)."""

    name: str

    def contains(self, address: str) -> bool:
        """True if ``address`` (lower-case, 0x-prefixed) is an active entry. Must not block or await."""
        ...

    def status(self) -> RegistryStatus: ...
