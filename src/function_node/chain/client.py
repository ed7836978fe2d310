"""A JSON-RPC client over the ``rpcProvider`` list: failover, bounded retries, timeouts, one error type.

Reads go through here (``eth_call``, chain id, block number): they are safe to repeat, so a failed
call is retried on the next URL and, after a short backoff, round the list again, a bounded number of
times. A URL that failed is skipped on later calls until another one fails too. Every third-party error
is translated once, here, into :class:`ChainError` naming the (redacted) URL; a revert is a
:class:`ChainRevertError`, which is not retried, since every honest node would answer the same.
Transactions are not retried here: :mod:`function_node.chain.transactions` sends them through
:meth:`ChainClient.web3`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import aiohttp
from eth_typing import HexStr
from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider
from web3.exceptions import ContractLogicError, Web3Exception, Web3RPCError
from web3.types import TxParams

from function_node.errors import ChainError
from function_node.redact import redact_text, redact_url

__all__ = ["BATCH_SIZE", "ChainClient", "ChainRevertError"]

T = TypeVar("T")

DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_RETRIES: Final = 2
DEFAULT_BACKOFF_S: Final = 0.2
BATCH_SIZE: Final = 100  # eth_calls per JSON-RPC batch; public RPC providers cap batches near here
# How long close() waits, beyond the call timeout, for calls abandoned at their timeout: one may still be
# queued for web3's session lock, which no timeout of ours bounds (see ChainClient._on).
CLOSE_GRACE_S: Final = 5.0


class ChainRevertError(ChainError):
    """The call reached a node and the contract reverted (or there is no such function)."""


def _is_revert(exc: BaseException) -> bool:
    if isinstance(exc, ContractLogicError):
        return True
    return isinstance(exc, Web3RPCError) and "revert" in str(exc).lower()


class ChainClient:
    """Reads from the first healthy URL of ``urls``; close() releases the HTTP sessions."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF_S,
        call_gas: int | None = None,
    ) -> None:
        if not urls:
            raise ChainError("no rpcProvider URL is configured; set rpcProvider in config.yaml")
        self.urls = list(urls)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.call_gas = call_gas
        self._preferred = 0
        self._web3: dict[str, AsyncWeb3[Any]] = {}
        self._calls: set[asyncio.Future[Any]] = set()  # calls in flight, kept until they end

    @property
    def current_url(self) -> str:
        """The URL the next call tries first (redacted)."""
        return redact_url(self.urls[self._preferred])

    def _client(self, url: str) -> AsyncWeb3[Any]:
        w3 = self._web3.get(url)
        if w3 is None:
            if url.startswith(("ws://", "wss://")):
                w3 = AsyncWeb3(WebSocketProvider(url, request_timeout=self.timeout))
            else:
                # web3's own retries are off: this class owns retrying, so the bound is one number.
                w3 = AsyncWeb3(
                    AsyncHTTPProvider(
                        url,
                        request_kwargs={"timeout": aiohttp.ClientTimeout(total=self.timeout)},
                        exception_retry_configuration=None,
                    )
                )
            # web3's validation middleware asks eth_chainId before every eth_call and estimate, to check a
            # chainId field no call here carries; the chain is checked where it matters instead (the
            # registries on every refresh, ``fxn provider`` before it sends). Without it a read is one
            # round trip, not two.
            w3.middleware_onion.remove("validation")
            self._web3[url] = w3
        return w3

    async def _on(self, url: str, op: Callable[[AsyncWeb3[Any]], Awaitable[T]]) -> T:
        w3 = self._client(url)
        if w3.provider.has_persistent_connection and not await w3.provider.is_connected():
            await w3.provider.connect()
        # A timeout (or a cancelled refresh) stops waiting for the call, never the call itself: web3's
        # HTTP provider takes a process-wide lock for its session cache through a thread pool, and a call
        # cancelled while it waits for that lock leaves the lock held, so every later call in the
        # process would hang. The call ends on its own, within the provider's own timeout.
        call = asyncio.ensure_future(op(w3))
        self._calls.add(call)
        call.add_done_callback(self._call_done)
        async with asyncio.timeout(self.timeout):
            return await asyncio.shield(call)

    def _call_done(self, call: asyncio.Future[Any]) -> None:
        self._calls.discard(call)
        if not call.cancelled():
            call.exception()  # retrieved: a call nobody waits for any more must not log its error

    def web3(self) -> AsyncWeb3[Any]:
        """The web3 client of the preferred URL, for what reads cannot do (signing and sending)."""
        return self._client(self.urls[self._preferred])

    async def read(self, what: str, op: Callable[[AsyncWeb3[Any]], Awaitable[T]]) -> T:
        """Run ``op`` against the URLs in order of preference; ChainError once every try failed."""
        failures: dict[str, str] = {}
        count = len(self.urls)
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            start = self._preferred
            for step in range(count):
                index = (start + step) % count
                url = self.urls[index]
                try:
                    result = await self._on(url, op)
                except (Web3Exception, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    if _is_revert(exc):
                        raise ChainRevertError(
                            f"{what} reverted on {redact_url(url)}: {redact_text(str(exc))}"
                        ) from exc
                    failures[redact_url(url)] = redact_text(_describe(exc).replace(url, redact_url(url)))
                    # Skip this URL on later calls until the next one fails too.
                    self._preferred = (index + 1) % count
                    continue
                self._preferred = index
                return result
        detail = "; ".join(f"{u}: {m}" for u, m in failures.items())
        raise ChainError(f"{what} failed on every RPC URL after {self.retries + 1} round(s): {detail}")

    async def call(self, to: str, data: bytes, what: str = "eth_call") -> bytes:
        """``eth_call`` of ``data`` at ``to`` on the latest block; the raw return bytes."""
        tx: TxParams = {"to": AsyncWeb3.to_checksum_address(to), "data": HexStr("0x" + data.hex())}
        if self.call_gas is not None:
            tx["gas"] = self.call_gas

        async def op(w3: AsyncWeb3[Any]) -> bytes:
            return bytes(await w3.eth.call(tx, "latest"))

        return await self.read(what, op)

    async def call_batch(self, calls: Sequence[tuple[str, bytes]], what: str) -> list[bytes]:
        """Several ``eth_call`` (to, data) in JSON-RPC batches of at most ``BATCH_SIZE``: one round trip
        and far less client overhead per call than one request each. The answers, in order."""
        out: list[bytes] = []
        for start in range(0, len(calls), BATCH_SIZE):
            chunk = calls[start : start + BATCH_SIZE]

            async def op(w3: AsyncWeb3[Any], chunk: Sequence[tuple[str, bytes]] = chunk) -> list[bytes]:
                async with w3.batch_requests() as batch:
                    for to, data in chunk:
                        tx: TxParams = {
                            "to": AsyncWeb3.to_checksum_address(to),
                            "data": HexStr("0x" + data.hex()),
                        }
                        batch.add(w3.eth.call(tx, "latest"))
                    answers = await batch.async_execute()
                return [bytes(a) for a in answers]  # type: ignore[arg-type]  # eth_call answers are bytes

            out.extend(await self.read(what, op))
        return out

    async def chain_id(self) -> int:
        async def op(w3: AsyncWeb3[Any]) -> int:
            return int(await w3.eth.chain_id)

        return await self.read("eth_chainId", op)

    async def block_number(self) -> int:
        async def op(w3: AsyncWeb3[Any]) -> int:
            return int(await w3.eth.block_number)

        return await self.read("eth_blockNumber", op)

    async def latest_block_time(self) -> int:
        """Unix time of the latest block (``fxn doctor`` compares it with the local clock)."""

        async def op(w3: AsyncWeb3[Any]) -> int:
            block = await w3.eth.get_block("latest")
            return int(block["timestamp"])

        return await self.read("eth_getBlockByNumber", op)

    async def close(self) -> None:
        if self._calls:
            # Abandoned calls (see _on) end first, so none of them opens a session after the sessions are
            # closed, to be left open for ever. Their HTTP part is bounded by the provider's timeout, but
            # not their wait for web3's session lock, hence the grace on top.
            await asyncio.wait(list(self._calls), timeout=self.timeout + CLOSE_GRACE_S)
        for w3 in self._web3.values():
            provider = w3.provider
            try:
                await provider.disconnect()
            except (Web3Exception, aiohttp.ClientError, OSError) as exc:  # closing is best effort
                del exc
        self._web3.clear()

    async def __aenter__(self) -> ChainClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
