"""Client library: sign requests to a Function Node and check who answered (SPEC §5, §9).

* :class:`FxnSigner` — the four (five, for v2) authentication headers for any HTTP stack.
* :class:`FxnAuth` — ``httpx.Auth`` for httpx and the official ``openai`` SDK.
* :class:`FxnClientSession` — the same for aiohttp.
* :func:`verify_response_signature` — check ``X-Fxn-Response-Signature`` against the node's address.

Everything else in this package is private and may change.
"""

from function_node.client._aiohttp import FxnClientSession
from function_node.client._httpx import FxnAuth
from function_node.client._signer import FxnSigner
from function_node.client._verify import verify_response_signature

__all__ = ["FxnAuth", "FxnClientSession", "FxnSigner", "verify_response_signature"]
