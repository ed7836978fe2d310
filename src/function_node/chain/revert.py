"""Why a contract call reverted, decoded from its revert data into a name, arguments and a sentence.

Revert data is a 4-byte selector and ABI-encoded arguments: ``Error(string)`` for ``require`` reasons,
``Panic(uint256)`` for failed assertions and arithmetic, or one of the contracts' custom errors (the
live registries' ``AccessControlUnauthorizedAccount(address,bytes32)``, ``EnforcedPause()`` …), looked up
in the ABIs shipped with the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak

from function_node.chain.compiled import abi_names, load_abi

__all__ = ["ROLE_NAMES", "Revert", "decode_revert", "role_name"]

_ERROR_STRING: Final = bytes.fromhex("08c379a0")  # Error(string)
_PANIC: Final = bytes.fromhex("4e487b71")  # Panic(uint256)
ROLE_NAMES: Final = {bytes(32): "DEFAULT_ADMIN_ROLE", bytes(keccak(b"PAUSER_ROLE")): "PAUSER_ROLE"}
_ROLE_WORDS: Final = {"DEFAULT_ADMIN_ROLE": "admin", "PAUSER_ROLE": "pauser"}
# Solidity's panic codes (docs: "Panic via assert and Error via require").
_PANICS: Final = {
    0x01: "an assertion failed",
    0x11: "an arithmetic operation overflowed",
    0x12: "a division by zero",
    0x21: "an invalid enum value",
    0x22: "a corrupt storage byte array",
    0x31: "pop() on an empty array",
    0x32: "an array index out of bounds",
    0x41: "an out-of-memory allocation",
    0x51: "a call to an uninitialised function",
}
_SENTENCES: Final = {
    "AccessControlBadConfirmation": "renouncing a role needs the caller's own address as confirmation",
    "EnforcedPause": "the entry is paused already",
    "ExpectedPause": "the entry is not paused",
    "ReentrancyGuardReentrantCall": "the contract refused a re-entrant call",
}


def role_name(role: bytes) -> str:
    """``PAUSER_ROLE`` for the pauser role's id, else the id in hex."""
    return ROLE_NAMES.get(bytes(role), "0x" + bytes(role).hex())


@dataclass(frozen=True, slots=True)
class Revert:
    """A decoded revert; ``name`` is "" when the data matches nothing known."""

    name: str
    args: tuple[Any, ...]
    data: bytes

    @property
    def reason(self) -> str:
        """The ``require`` message of an ``Error(string)`` revert, else ""."""
        return str(self.args[0]) if self.name == "Error" and self.args else ""

    def sentence(self) -> str:
        """What went wrong, for a person: no selector or hex unless nothing better is known."""
        if self.name == "AccessControlUnauthorizedAccount" and len(self.args) == 2:
            account, role = self.args
            named = role_name(role)
            word = _ROLE_WORDS.get(named)
            held = f"the {word} role ({named})" if word else f"the role {named}"
            return f"this key ({str(account).lower()}) lacks {held}"
        if self.name == "Error":
            return f'the contract refused: "{self.reason}"'
        if self.name == "Panic" and self.args:
            code = int(self.args[0])
            return f"the contract panicked: {_PANICS.get(code, 'an unknown panic')} (code {code:#04x})"
        if self.name in _SENTENCES:
            return _SENTENCES[self.name]
        if self.name:
            shown = ", ".join(_show(a) for a in self.args)
            return f"the contract refused with {self.name}({shown})"
        if not self.data:
            return "the contract reverted without a reason"
        return f"the contract reverted with unknown error data 0x{self.data.hex()}"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value).lower() if isinstance(value, str) and value.startswith("0x") else str(value)


@cache
def _custom_errors() -> dict[bytes, tuple[str, tuple[str, ...]]]:
    """Selector -> (name, argument types) of every custom error in the shipped ABIs."""
    found: dict[bytes, tuple[str, tuple[str, ...]]] = {}
    for contract in abi_names():
        for item in load_abi(contract):
            if item.get("type") != "error":
                continue
            types = tuple(_abi_type(i) for i in item.get("inputs", []))
            signature = f"{item['name']}({','.join(types)})"
            found[bytes(function_signature_to_4byte_selector(signature))] = (str(item["name"]), types)
    return found


def _abi_type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item.get("components", [])) + ")" + kind[len("tuple") :]
    return kind


def decode_revert(data: object) -> Revert:
    """Decode revert data (bytes or 0x-hex, as web3's exceptions carry it); never raises."""
    raw = _as_bytes(data)
    selector, body = raw[:4], raw[4:]
    if selector == _ERROR_STRING:
        return _decoded("Error", ("string",), body, raw)
    if selector == _PANIC:
        return _decoded("Panic", ("uint256",), body, raw)
    known = _custom_errors().get(selector)
    if known is None:
        return Revert("", (), raw)
    return _decoded(known[0], known[1], body, raw)


def _decoded(name: str, types: tuple[str, ...], body: bytes, raw: bytes) -> Revert:
    try:
        return Revert(name, tuple(decode(list(types), body)), raw)
    except (DecodingError, ValueError, OverflowError):
        return Revert("", (), raw)


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if not isinstance(data, str):
        return b""
    text = data.strip().removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""
