"""The committed ABIs and bytecode of the project's contracts, read from the installed package."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["abi_names", "load_abi", "load_bytecode"]


def _read(kind: str, name: str) -> Any:
    text = resources.files("function_node.chain").joinpath(kind, f"{name}.json").read_text()
    return json.loads(text)


def abi_names() -> list[str]:
    """The contracts whose ABI the package ships, sorted."""
    folder = resources.files("function_node.chain").joinpath("abi")
    return sorted(item.name.removesuffix(".json") for item in folder.iterdir() if item.name.endswith(".json"))


def load_abi(name: str) -> list[dict[str, Any]]:
    """The ABI of ``name`` (Router, GatewayRegistry, ProviderRegistry, SchedulerRegistry)."""
    abi: list[dict[str, Any]] = _read("abi", name)
    return abi


def load_bytecode(name: str) -> str:
    """The 0x-prefixed creation bytecode of ``name``."""
    return str(_read("artifacts", name)["bytecode"])
