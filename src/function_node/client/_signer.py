"""Signing a request's headers (SPEC §5), for any HTTP stack."""

from __future__ import annotations

import secrets
import time
from typing import Final

from function_node.protocol import (
    HEADER_ADDRESS,
    HEADER_AUTH_SCHEME,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    V2_SCHEME,
    legacy_message,
    v2_message,
)
from function_node.signing import LocalSigner, body_sha256, normalize_address

__all__ = ["FxnSigner", "request_path"]

_NONCE_BYTES: Final = 16


def request_path(path_or_target: str) -> str:
    """The path that v2 signs: the raw request target without its query string."""
    return path_or_target.split("?", 1)[0] or "/"


class FxnSigner:
    """A caller's key and the headers that authenticate one request with it.

    ``headers(...)`` signs the audience-bound v2 message (and adds ``X-Fxn-Auth: 2``) when the node's
    address is known, else the legacy message that the live network's gateways use. The nonce is
    16 random bytes in hex unless given; the timestamp is now unless given.
    """

    __slots__ = ("_signer",)

    def __init__(self, key: LocalSigner | str) -> None:
        self._signer = key if isinstance(key, LocalSigner) else LocalSigner.from_hex(key)

    def __repr__(self) -> str:
        return f"FxnSigner(address={self.address!r})"

    @property
    def address(self) -> str:
        """The checksummed address that the node looks up in its registries."""
        return self._signer.address

    @property
    def signer(self) -> LocalSigner:
        return self._signer

    def headers(
        self,
        method: str,
        path: str,
        body: bytes,
        node_address: str | None = None,
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce_text = secrets.token_hex(_NONCE_BYTES) if nonce is None else nonce
        body_hash = body_sha256(body)
        out = {
            HEADER_ADDRESS: self.address,
            HEADER_TIMESTAMP: ts,
            HEADER_NONCE: nonce_text,
        }
        if node_address:
            message = v2_message(
                normalize_address(node_address), method, request_path(path), body_hash, ts, nonce_text
            )
            out[HEADER_AUTH_SCHEME] = V2_SCHEME
        else:
            message = legacy_message(body_hash, ts, nonce_text)
        out[HEADER_SIGNATURE] = "0x" + self._signer.sign(message)
        return out
