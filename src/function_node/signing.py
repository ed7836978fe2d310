"""secp256k1 signatures of EIP-191 personal messages (SPEC §5), shared by node, client and scheduler.

The messages themselves (requests and answers) are built in :mod:`function_node.protocol`; this
module holds the cryptography under them: EIP-191 personal-message hashes, signing, recovery and
addresses. Recovery calls coincurve (libsecp256k1) and pycryptodome's keccak directly: 1.5-4x faster
than going through eth-account (docs/benchmarks.md), which matters because the node verifies one
signature per request. High-s signatures are refused (EIP-2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

import coincurve
from Crypto.Hash import keccak as _keccak_mod

from function_node.errors import SigningError

__all__ = [
    "SECP256K1_HALF_N",
    "SIGNATURE_BYTES",
    "LocalSigner",
    "body_sha256",
    "normalize_address",
    "parse_signature",
    "personal_message_hash",
    "public_key_to_address",
    "recover_address",
    "sign_message",
    "to_checksum_address",
]

SIGNATURE_BYTES: Final = 65
# EIP-2: of the two valid s values of a signature, only the low one (s <= n/2) is accepted, so a
# signature cannot be re-encoded into a second valid one. Every standard signer produces low s.
SECP256K1_HALF_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
_EIP191_PREFIX: Final = b"\x19Ethereum Signed Message:\n"
_ADDRESS_HEX_LEN: Final = 40
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def keccak(data: bytes) -> bytes:
    """keccak256 (Ethereum's, not SHA3-256)."""
    return _keccak_mod.new(data=data, digest_bits=256).digest()


def body_sha256(body: bytes) -> str:
    """Lower-case hex SHA-256 of the raw body bytes."""
    return hashlib.sha256(body).hexdigest()


def personal_message_hash(message: str | bytes) -> bytes:
    """keccak256 of the EIP-191 (version 0x45) envelope of ``message``."""
    data = message.encode() if isinstance(message, str) else message
    return keccak(_EIP191_PREFIX + str(len(data)).encode() + data)


def normalize_address(address: str) -> str:
    """``0x`` + 40 lower-case hex digits; raises SigningError for anything else."""
    text = address.strip()
    body = text[2:] if text[:2] in ("0x", "0X") else ""
    # A set test, not int(body, 16): int() also takes "_" separators, spaces and a sign.
    if len(body) != _ADDRESS_HEX_LEN or not set(body) <= _HEX_DIGITS:
        raise SigningError(f"address {address!r} is not 0x followed by 40 hex digits")
    return "0x" + body.lower()


def to_checksum_address(address: str) -> str:
    """EIP-55 mixed-case form of an address."""
    lower = normalize_address(address)[2:]
    digest = keccak(lower.encode()).hex()
    return "0x" + "".join(ch.upper() if int(digest[i], 16) >= 8 else ch for i, ch in enumerate(lower))


def public_key_to_address(public_key_uncompressed: bytes) -> str:
    """Lower-case address of a 65-byte (0x04-prefixed) or 64-byte uncompressed public key."""
    raw = public_key_uncompressed[1:] if len(public_key_uncompressed) == 65 else public_key_uncompressed
    return "0x" + keccak(raw)[-20:].hex()


def parse_signature(signature: str) -> bytes:
    """Decode a 65-byte hex signature (``0x`` optional) to r||s||recovery-id with the id in {0, 1}."""
    text = signature.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if len(text) != SIGNATURE_BYTES * 2:
        raise SigningError(f"signature must be {SIGNATURE_BYTES} bytes of hex, got {len(text)} hex digits")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise SigningError("signature is not valid hex") from None
    if len(raw) != SIGNATURE_BYTES:  # bytes.fromhex skips spaces between byte pairs
        raise SigningError("signature is not valid hex")
    v = raw[64]
    if v in (27, 28):
        v -= 27
    elif v not in (0, 1):
        raise SigningError(f"signature recovery byte v={raw[64]} is not 0, 1, 27 or 28")
    if int.from_bytes(raw[32:64], "big") > SECP256K1_HALF_N:
        raise SigningError("signature has a high s value (EIP-2); sign with a standard signer")
    return raw[:64] + bytes((v,))


def recover_address(message: str | bytes, signature: str) -> str:
    """The lower-case address whose key signed ``message`` (EIP-191); raises SigningError if none."""
    sig = parse_signature(signature)
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            sig, personal_message_hash(message), hasher=None
        )
    except Exception as exc:  # libsecp256k1 reports an invalid point or scalar as a bare Exception
        raise SigningError("signature does not recover to a public key") from exc
    return public_key_to_address(public_key.format(compressed=False))


def sign_message(private_key: bytes, message: str | bytes) -> str:
    """EIP-191 signature of ``message``: 130 hex digits, no ``0x``, v in {27, 28}."""
    raw = coincurve.PrivateKey(private_key).sign_recoverable(personal_message_hash(message), hasher=None)
    return (raw[:64] + bytes((raw[64] + 27,))).hex()


@dataclass(frozen=True, slots=True)
class LocalSigner:
    """A private key held in memory, with its address and public key. Never printed."""

    private_key: bytes = field(repr=False)
    address: str = field(init=False)
    public_key_hex: str = field(init=False)
    # Built once: constructing a coincurve key derives its public key, ~40 µs, which would more than
    # double the cost of each response signature on the request path.
    _key: coincurve.PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.private_key) != 32:
            raise SigningError("a private key is 32 bytes")
        try:
            key = coincurve.PrivateKey(self.private_key)
            public = key.public_key.format(compressed=False)
        except Exception as exc:  # libsecp256k1 rejects 0 and values >= the curve order
            raise SigningError("the private key is not a valid secp256k1 scalar") from exc
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "address", to_checksum_address(public_key_to_address(public)))
        object.__setattr__(self, "public_key_hex", public[1:].hex())

    @classmethod
    def from_hex(cls, private_key_hex: str) -> LocalSigner:
        text = private_key_hex.strip()
        if text[:2] in ("0x", "0X"):
            text = text[2:]
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise SigningError("private key is not valid hex") from None
        return cls(raw)

    def __reduce__(self) -> tuple[type[LocalSigner], tuple[bytes]]:
        return (LocalSigner, (self.private_key,))  # the coincurve key is rebuilt, not pickled

    def sign(self, message: str | bytes) -> str:
        raw = self._key.sign_recoverable(personal_message_hash(message), hasher=None)
        return (raw[:64] + bytes((raw[64] + 27,))).hex()
