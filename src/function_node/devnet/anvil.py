"""A local Ethereum node (anvil, from the npm package) for the devnet and the integration tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from function_node.devnet.process import ManagedProcess, free_port
from function_node.devnet.solc import repo_root

__all__ = ["ANVIL_BLOCK_GAS_LIMIT", "AnvilProcess", "find_anvil"]

# Reading 10,000 providers in one eth_call costs a few hundred million gas (cold storage reads and
# memory growth); the chain's block gas limit is also the default gas of an eth_call, so raise it.
ANVIL_BLOCK_GAS_LIMIT: Final = 30_000_000_000
_DEFAULT_CHAIN_ID: Final = 31337


def find_anvil(root: Path | None = None) -> Path:
    """``$FXN_ANVIL``, else ``node_modules/.bin/anvil`` under the repo root."""
    env = os.environ.get("FXN_ANVIL")
    path = Path(env) if env else (root or repo_root()) / "node_modules" / ".bin" / "anvil"
    if not path.exists():
        raise FileNotFoundError(f"anvil not found at {path}; run `npm ci` in the repo root or set FXN_ANVIL")
    return path


class AnvilProcess(ManagedProcess):
    """anvil on 127.0.0.1:``port`` with the default development accounts.

    ``state_file``: load the chain from it at start and save it there on exit (devnet persistence).
    """

    def __init__(
        self,
        log_path: Path,
        *,
        port: int | None = None,
        state_file: Path | None = None,
        chain_id: int = _DEFAULT_CHAIN_ID,
        block_time: float | None = None,
        binary: Path | None = None,
    ) -> None:
        self.port_number = port if port is not None else free_port()
        self.state_file = state_file
        argv = [
            str(binary or find_anvil()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port_number),
            "--chain-id",
            str(chain_id),
            "--gas-limit",
            str(ANVIL_BLOCK_GAS_LIMIT),
            "--disable-code-size-limit",
        ]
        if block_time is not None:
            argv += ["--block-time", str(block_time)]
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--state", str(state_file)]
        super().__init__("anvil", argv, log_path, port=self.port_number)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port_number}"
