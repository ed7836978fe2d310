"""One contract call sent as a transaction, with web3.py doing the work: connect, estimate, fees, sign, wait.

:func:`connect` picks the first ``rpcProvider`` URL that answers and checks its chain against
config.yaml's ``chainId``. :class:`TransactionSender` then prepares a call (web3 estimates the gas and fills
the EIP-1559 fees; the key's balance must cover the most it could cost), sends it signed with the node key,
and waits for its receipt and confirmations. Every failure is one :class:`TransactionError` (or
:class:`ChainIdMismatchError`) whose message is a sentence: a revert's reason or custom error decoded by
:mod:`function_node.chain.revert`, the balance and the estimate in ether, the hash to look up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import aiohttp
from eth_typing import HexStr
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception
from web3.types import TxParams

from function_node.chain.client import ChainClient
from function_node.chain.revert import Revert, decode_revert
from function_node.errors import ChainError, ChainIdMismatchError, TransactionError
from function_node.redact import redact_text, redact_url

__all__ = [
    "Mined",
    "PreparedCall",
    "TransactionRevertedError",
    "TransactionSender",
    "connect",
    "ether",
]

# The gas limit sent is the estimate plus this share: the estimate is exact for the state it ran on, and a
# block mined in between may need slightly more. Unused gas is not charged.
GAS_MARGIN_PERCENT: Final = 20
_POLL_S: Final = 0.1
_NETWORK_ERRORS: Final = (Web3Exception, aiohttp.ClientError, OSError, TimeoutError, ValueError)


class TransactionRevertedError(TransactionError):
    """The call would revert (at estimation) or did revert (in a block); ``revert`` says why."""

    def __init__(self, message: str, revert: Revert) -> None:
        super().__init__(message)
        self.revert = revert


def ether(wei: int) -> str:
    """``0.000123 ETH``: wei as ether, without trailing zeros or exponent."""
    value = (Decimal(wei) / Decimal(10**18)).normalize()
    return f"{value:f} ETH"


async def connect(urls: Sequence[str], chain_id: int, *, call_timeout: float) -> tuple[ChainClient, int]:
    """A client on the first URL whose ``eth_chainId`` answers, and that chain id.

    ChainError (naming every URL redacted: no path, credentials or query) when none answers;
    ChainIdMismatchError when the first that answers serves another chain than ``chain_id`` (0: any).
    """
    if not urls:
        raise ChainError("rpcProvider is empty in config.yaml; set it to the network's JSON-RPC URL")
    failures: list[str] = []
    for url in urls:
        client = ChainClient([url], timeout=call_timeout, retries=0)
        try:
            served = await client.chain_id()
        except ChainError as exc:
            await client.close()
            failures.append(f"{redact_url(url)} ({_why(exc, url)})")
            continue
        if chain_id and served != chain_id:
            await client.close()
            raise ChainIdMismatchError(
                f"the RPC at {redact_url(url)} serves chain {served}, but config.yaml says chainId: "
                f"{chain_id}; point rpcProvider at chain {chain_id}, or correct chainId"
            )
        return client, served
    raise ChainError(f"no RPC answered: {'; '.join(failures)}; check rpcProvider in config.yaml")


def _why(exc: BaseException, url: str) -> str:
    """The cause in a ChainClient message (which names the URL redacted, then the cause)."""
    text = str(exc).split(f"{redact_url(url)}: ", 1)[-1]
    return redact_text(text) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A call ready to be signed: what it does (for ``--dry-run``) and what it may cost."""

    contract: str  # the contract's name, e.g. ProviderRegistry
    to: str  # its address
    function: str  # the Solidity signature, e.g. pause(bytes)
    args: tuple[Any, ...]
    sender: str
    chain_id: int
    transaction: dict[str, Any] = field(repr=False)  # what web3 built: nonce, gas, fees, data
    gas_estimate: int = 0
    balance: int = 0

    @property
    def calldata(self) -> str:
        return str(self.transaction["data"])

    @property
    def gas_limit(self) -> int:
        return int(self.transaction["gas"])

    @property
    def max_fee_per_gas(self) -> int:
        return int(self.transaction["maxFeePerGas"])

    @property
    def max_priority_fee_per_gas(self) -> int:
        return int(self.transaction["maxPriorityFeePerGas"])

    @property
    def max_cost(self) -> int:
        """The most the transaction can cost in wei (what the chain requires the balance to cover)."""
        return self.gas_limit * self.max_fee_per_gas


@dataclass(frozen=True, slots=True)
class Mined:
    """A transaction's receipt, once it has the confirmations asked for."""

    tx_hash: str
    block: int
    gas_used: int
    effective_gas_price: int
    waited_s: float  # from sending to the last confirmation
    logs: tuple[Any, ...]


class TransactionSender:
    """Prepares, sends and waits for transactions from ``sender`` through one web3 client."""

    def __init__(self, w3: AsyncWeb3[Any], url: str, sender: str, chain_id: int) -> None:
        self.w3 = w3
        self.url = url
        self.sender = AsyncWeb3.to_checksum_address(sender)
        self.chain_id = chain_id

    def _network_error(self, what: str, exc: BaseException) -> ChainError:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return ChainError(f"{what} failed on {redact_url(self.url)}: {redact_text(text)}")

    async def prepare(self, contract: Any, name: str, function: str, args: Sequence[Any]) -> PreparedCall:
        """Estimate, build (EIP-1559 fees) and check the balance; TransactionError says why it cannot go."""
        call = contract.functions[function.split("(", 1)[0]](*args)
        try:
            estimate = int(await call.estimate_gas({"from": self.sender}))
            nonce = int(await self.w3.eth.get_transaction_count(self.sender, "pending"))
            transaction = dict(
                await call.build_transaction(
                    {
                        "from": self.sender,
                        "nonce": nonce,
                        "chainId": self.chain_id,
                        "gas": estimate * (100 + GAS_MARGIN_PERCENT) // 100,
                    }
                )
            )
            balance = int(await self.w3.eth.get_balance(self.sender))
        except ContractLogicError as exc:
            revert = decode_revert(exc.data)
            raise TransactionRevertedError(revert.sentence(), revert) from exc
        except _NETWORK_ERRORS as exc:
            raise self._network_error(f"preparing {function}", exc) from exc
        prepared = PreparedCall(
            contract=name,
            to=str(contract.address),
            function=function,
            args=tuple(args),
            sender=self.sender,
            chain_id=self.chain_id,
            transaction=transaction,
            gas_estimate=estimate,
            balance=balance,
        )
        if balance < prepared.max_cost:
            raise TransactionError(
                f"the key {self.sender} holds {ether(balance)}, and {function} may cost up to "
                f"{ether(prepared.max_cost)} (gas estimate {estimate:,} + {GAS_MARGIN_PERCENT}% at up to "
                f"{prepared.max_fee_per_gas / 10**9:g} gwei); send ether to {self.sender} and run it again"
            )
        return prepared

    async def send(self, prepared: PreparedCall, private_key: bytes) -> str:
        """Sign with ``private_key`` and send; the transaction hash (0x-hex)."""
        from eth_account import Account

        signed = Account.sign_transaction(prepared.transaction, private_key)
        try:
            tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except ContractLogicError as exc:
            revert = decode_revert(exc.data)
            raise TransactionRevertedError(revert.sentence(), revert) from exc
        except _NETWORK_ERRORS as exc:
            raise self._network_error(f"sending {prepared.function}", exc) from exc
        return "0x" + bytes(tx_hash).hex()

    async def wait(self, prepared: PreparedCall, tx_hash: str, *, confirmations: int, within: float) -> Mined:
        """The receipt once ``confirmations`` blocks hold it (1 = included); TransactionError otherwise."""
        started = time.monotonic()
        late = TransactionError(
            f"transaction {tx_hash} was not mined within {within:g} s; it may still be: look it up by its "
            "hash before sending it again (raise --timeout to wait longer)"
        )
        try:
            receipt = await self.w3.eth.wait_for_transaction_receipt(
                HexStr(tx_hash), timeout=within, poll_latency=_POLL_S
            )
            block = int(receipt["blockNumber"])
            while int(await self.w3.eth.block_number) - block + 1 < confirmations:
                if time.monotonic() - started > within:
                    raise TransactionError(
                        f"transaction {tx_hash} is in block {block} but has fewer than {confirmations} "
                        f"confirmations after {within:g} s; look it up by its hash (raise --timeout)"
                    )
                await asyncio.sleep(_POLL_S)
        except TimeExhausted:
            raise late from None
        except _NETWORK_ERRORS as exc:
            raise self._network_error(f"waiting for {tx_hash}", exc) from exc
        if int(receipt["status"]) != 1:
            why = await self._replay(prepared, block)
            raise TransactionRevertedError(
                f"transaction {tx_hash} reverted in block {block}: {why.sentence()}", why
            )
        return Mined(
            tx_hash=tx_hash,
            block=block,
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0)),
            waited_s=time.monotonic() - started,
            logs=tuple(receipt["logs"]),
        )

    async def _replay(self, prepared: PreparedCall, block: int) -> Revert:
        """Why a mined transaction reverted: the same call on the state just before its block."""
        call: TxParams = {
            "from": self.sender,
            "to": AsyncWeb3.to_checksum_address(prepared.to),
            "data": HexStr(prepared.calldata),
        }
        try:
            await self.w3.eth.call(call, block - 1)
        except ContractLogicError as exc:
            return decode_revert(exc.data)
        except _NETWORK_ERRORS:
            pass
        return decode_revert(b"")
