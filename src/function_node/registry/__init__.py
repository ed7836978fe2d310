"""Who may call the node: the Registry protocol, static allow-lists, and the caller directory.

Chain-backed registries (:mod:`function_node.chain`) implement the same protocol, so the auth
middleware never knows where an address came from.
"""

from function_node.registry.base import Registry, RegistryStatus
from function_node.registry.directory import CallerDirectory, CallerRole
from function_node.registry.static import StaticRegistry

__all__ = ["CallerDirectory", "CallerRole", "Registry", "RegistryStatus", "StaticRegistry"]
