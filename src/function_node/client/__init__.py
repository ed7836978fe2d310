"""Client library: sign requests to a Function Node and check who answered (SPEC §5, §9).

* :class:`FxnSigner` — the four (five, for v2) authentication headers for any HTTP stack.
* :class:`FxnAuth` — ``httpx.Auth`` for httpx and the official ``openai`` SDK; checks every answer.
* :class:`FxnClientSession` — the same for aiohttp; its answers are :class:`NodeAnswer`.
* :func:`verify_response_signature` — check a plain or streamed answer's signature yourself.
* :class:`NodeIdentityError` — raised when a node is not the one expected.

Pass the node's address from what you trust (its provider registry entry) as ``node_address``; with a
bare URL the address in ``GET /health`` is trusted on first use. Everything else in this package is
private and may change.
"""

from function_node.client._aiohttp import FxnClientSession, NodeAnswer
from function_node.client._httpx import FxnAuth
from function_node.client._signer import FxnSigner
from function_node.errors import NodeIdentityError
from function_node.protocol import verify_answer as verify_response_signature

__all__ = [
    "FxnAuth",
    "FxnClientSession",
    "FxnSigner",
    "NodeAnswer",
    "NodeIdentityError",
    "verify_response_signature",
]
