"""The node's RPC client and contract reader, built on first use.

web3 and eth-abi take 0.5–0.9 s to import. A node that starts from fresh registry snapshots serves from
them at once, so it should not wait for those imports: the registries' first refresh, in the background,
builds the client, and the import runs in a worker thread so the event loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING

from function_node.errors import ChainError

if TYPE_CHECKING:
    from function_node.chain.client import ChainClient
    from function_node.chain.contracts import NetworkReader

__all__ = ["ChainLink"]


class ChainLink:
    """``rpcProvider``'s client and a reader of ``router`` (and ``scheduler_contract``), made once."""

    def __init__(self, rpc_urls: list[str], router: str, scheduler_contract: str = "") -> None:
        self._rpc_urls = rpc_urls
        self._router = router
        self._scheduler_contract = scheduler_contract
        self._client: ChainClient | None = None
        self._reader: NetworkReader | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def client(self) -> ChainClient | None:
        """The client once something has read the chain, else None."""
        return self._client

    async def reader(self) -> NetworkReader:
        # A refresh still running at shutdown must not use, or build, a client nothing will close.
        if self._closed:
            raise ChainError("the RPC client is closed")
        if self._reader is None:
            async with self._lock:
                if self._closed:
                    raise ChainError("the RPC client is closed")
                if self._reader is None:
                    await asyncio.to_thread(importlib.import_module, "function_node.chain.contracts")
                    from function_node.chain.client import ChainClient
                    from function_node.chain.contracts import NetworkReader

                    client = ChainClient(self._rpc_urls)
                    self._reader = NetworkReader(client, self._router, self._scheduler_contract)
                    self._client = client
        return self._reader

    async def chain_id(self) -> int:
        return await (await self.reader()).client.chain_id()

    async def close(self) -> None:
        async with self._lock:  # after a build in progress, so its client is the one closed here
            self._closed = True
        if self._client is not None:
            await self._client.close()
