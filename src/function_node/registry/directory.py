"""The caller directory: which registries admit a caller for which route."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from function_node.errors import RegistryError
from function_node.registry.base import Registry, RegistryStatus

__all__ = ["CallerDirectory", "CallerRole"]


class CallerRole(enum.Enum):
    GATEWAY = "gateway"
    SCHEDULER = "scheduler"


@dataclass(slots=True)
class CallerDirectory:
    """Gateways and schedulers, each from any number of registries (static lists, chain, or both).

    ``provider`` registries are not callers; they are kept here for /ready and `fxn status`.
    A registry that is not usable (not loaded, or stale) fails closed: ``role_of`` raises
    RegistryError when the caller is unknown to the usable registries *and* some registry of the
    role could not be consulted, so the answer says why instead of a plain "unknown caller".
    """

    gateways: Sequence[Registry] = field(default_factory=list)
    schedulers: Sequence[Registry] = field(default_factory=list)
    providers: Sequence[Registry] = field(default_factory=list)

    def role_of(self, address: str) -> CallerRole | None:
        """The caller's role (scheduler wins over gateway), None if unknown. Address is lower-case."""
        unusable: list[str] = []
        for role, registries in (
            (CallerRole.SCHEDULER, self.schedulers),
            (CallerRole.GATEWAY, self.gateways),
        ):
            for registry in registries:
                status = registry.status()
                if not status.usable:
                    unusable.append(f"{registry.name} ({'stale' if status.loaded else 'not loaded'})")
                    continue
                if registry.contains(address):
                    return role
        if unusable:
            raise RegistryError(f"registry unavailable: {', '.join(unusable)}")
        return None

    def all_registries(self) -> list[Registry]:
        return [*self.gateways, *self.schedulers, *self.providers]

    def statuses(self) -> list[RegistryStatus]:
        return [r.status() for r in self.all_registries()]

    def ready(self) -> bool:
        return all(s.usable for s in self.statuses())
