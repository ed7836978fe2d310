"""Checking a node's answer: who signed it, for which request (SPEC §5), in either form."""

from __future__ import annotations

from function_node.protocol import verify_answer

__all__ = ["verify_response_signature"]


def verify_response_signature(
    node_address: str,
    *,
    caller_address: str,
    request_body: bytes,
    nonce: str,
    status: int,
    body: bytes,
    signature: str | None = None,
) -> bool:
    """True when ``node_address`` signed this answer (``status`` and ``body``) to the request with
    ``request_body`` and ``nonce`` that ``caller_address`` sent.

    * A plain answer: ``signature`` is its ``X-Fxn-Response-Signature`` header.
    * A streamed answer: leave ``signature`` out and pass the whole raw stream as ``body``; its last
      line, ``: fxn-signature 0x…``, signs every byte before it.

    Never raises: a malformed address or signature is simply not a valid signature.
    """
    return verify_answer(
        node_address,
        caller_address=caller_address,
        request_body=request_body,
        nonce=nonce,
        status=status,
        body=body,
        signature=signature,
    )
