"""Checking ``X-Fxn-Response-Signature``: which node answered what (SPEC §5)."""

from __future__ import annotations

from function_node.errors import SigningError
from function_node.node.auth_checks import is_wellformed_address, is_wellformed_signature
from function_node.signing import body_sha256, recover_address, response_message

__all__ = ["verify_response_signature"]


def verify_response_signature(
    node_address: str, request_body: bytes, nonce: str, response_body: bytes, signature: str
) -> bool:
    """True if ``signature`` is ``node_address``'s signature of this request/response pair.

    Never raises: a malformed address or signature is simply not a valid signature.
    """
    address = node_address.strip()
    sig = signature.strip()
    if not is_wellformed_address(address) or not is_wellformed_signature(sig):
        return False
    message = response_message(body_sha256(request_body), nonce, body_sha256(response_body))
    try:
        return recover_address(message, sig) == address.lower()
    except SigningError:
        return False
