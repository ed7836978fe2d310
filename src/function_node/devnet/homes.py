"""The files a devnet writes under ``--dir``: a home per node replica, the scheduler's and the gateway's.

Every key here is one of the public, well-known development keys of anvil's default mnemonic; they are
written as legacy plaintext key files (mode 0600) because they are public anyway and the devnet must
start unattended. Never use them on a real network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from function_node.keys import write_plaintext
from function_node.signing import LocalSigner

__all__ = [
    "DEV_GATEWAY_KEY",
    "DEV_PROVIDER_KEY",
    "DEV_SCHEDULER_KEY",
    "DevnetLayout",
    "NodeHome",
    "write_gateway_key",
    "write_node_home",
    "write_scheduler_home",
]

# anvil accounts 0, 1 and 2 (public development keys; deploy.DEV_GATEWAY/DEV_SCHEDULER/DEV_PROVIDER).
DEV_GATEWAY_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_SCHEDULER_KEY: Final = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEV_PROVIDER_KEY: Final = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
_REGISTRY_POLL: Final = "5s"  # the devnet's registries change while it runs: notice within seconds
_KEY_FILE: Final = "nodekey.json"


@dataclass(frozen=True, slots=True)
class DevnetLayout:
    """Where everything lives under the devnet directory."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def chain_state(self) -> Path:
        return self.root / "chain" / "anvil-state.json"

    @property
    def deployment(self) -> Path:
        return self.root / "chain" / "deployment.json"

    @property
    def scheduler(self) -> Path:
        return self.root / "scheduler"

    @property
    def gateway(self) -> Path:
        return self.root / "gateway"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    def node(self, index: int) -> Path:
        return self.root / f"node-{index}"


@dataclass(frozen=True, slots=True)
class NodeHome:
    path: Path
    port: int
    address: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _write_key(path: Path, signer: LocalSigner) -> None:
    # The devnet owns these files and rewrites them each start; replacing (rather than --force, which
    # keeps a timestamped backup) keeps the directory from filling with copies of public keys.
    path.unlink(missing_ok=True)
    write_plaintext(path, signer)


def _write_yaml(path: Path, document: dict[str, Any], header: str) -> None:
    path.write_text(f"# {header}\n" + yaml.safe_dump(document, sort_keys=False))


def write_node_home(
    home: Path,
    *,
    port: int,
    rpc_url: str,
    router: str,
    model: str,
    fxn_id: int,
    backend_url: str,
    redis_url: str = "",
    chain_id: int = 0,
) -> NodeHome:
    """config.yaml (chain registries through the Router), backend.yaml (one model), the provider key."""
    home.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    config: dict[str, Any] = {
        # A devnet node is reached on loopback; discovery would report the host's outward address.
        "node": {
            "listenAddress": "127.0.0.1",
            "listenPort": port,
            "keyFile": _KEY_FILE,
            "publicAddress": "127.0.0.1",
            "publicUrl": url,
        },
        "logger": {"verbosity": "info", "format": "json"},
        "rpcProvider": rpc_url,
        "chainId": chain_id,
        "registry": {
            "routerSmartContractAddress": router,
            "gateway": {"pollInterval": _REGISTRY_POLL},
            "provider": {"pollInterval": _REGISTRY_POLL},
            "scheduler": {"pollInterval": _REGISTRY_POLL},
        },
    }
    if redis_url:
        config["nonceCache"] = {"backend": "redis", "redisUrl": redis_url}
    _write_yaml(home / "config.yaml", config, "written by `fxn devnet up`; rewritten on every start")
    backends = {"models": [{"name": model, "fxnId": str(fxn_id), "backends": [{"url": backend_url}]}]}
    _write_yaml(home / "backend.yaml", backends, "written by `fxn devnet up`: the development backend")
    signer = LocalSigner.from_hex(DEV_PROVIDER_KEY)
    _write_key(home / _KEY_FILE, signer)
    return NodeHome(home, port, signer.address)


def write_scheduler_home(
    directory: Path, *, rpc_url: str, router: str, matrix_size: int, rows: int, interval: float
) -> Path:
    """scheduler.yaml (nodes from the provider registry's metadata) and the scheduler's key."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "keyFile": "schedulerkey.json",
        "database": "scheduler.db",
        "interval": f"{interval:g}s",
        "concurrency": 4,
        "requestTimeout": "60s",
        "matmul": {"size": matrix_size, "rows": rows, "backend": "auto"},
        "inference": {"maxTokens": 8},
        "providerRegistry": {"rpcProvider": [rpc_url], "routerSmartContractAddress": router},
    }
    path = directory / "scheduler.yaml"
    _write_yaml(path, config, "written by `fxn devnet up`")
    _write_key(directory / "schedulerkey.json", LocalSigner.from_hex(DEV_SCHEDULER_KEY))
    return path


def write_gateway_key(directory: Path) -> Path:
    """The gateway's key, for `fxn request` and scripts talking to the devnet as a gateway."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "gatewaykey.json"
    _write_key(path, LocalSigner.from_hex(DEV_GATEWAY_KEY))
    return path
