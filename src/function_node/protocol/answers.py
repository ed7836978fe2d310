"""Response signatures in both forms (SPEC §5): the node makes them (:class:`AnswerSigner`), callers
check them (:class:`ExpectedAnswer`, :func:`verify_answer`).

A plain answer carries ``X-Fxn-Response-Signature``; a streamed one ends with the SSE comment
``: fxn-signature 0x…``, over every byte relayed before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from function_node.errors import SigningError
from function_node.protocol.headers import (
    HEADER_NODE,
    HEADER_RESPONSE_SIGNATURE,
    is_wellformed_address,
    is_wellformed_signature,
)
from function_node.protocol.messages import response_message
from function_node.signing import LocalSigner, body_sha256, recover_address

# The SSE comment that closes a streamed answer: ": fxn-signature 0x<130 hex>\n\n".
__all__ = [
    "STREAM_SIGNATURE_PREFIX",
    "WRONG_SIGNER",
    "AnswerSigner",
    "ExpectedAnswer",
    "NodeReply",
    "StreamCheck",
    "StreamSigner",
    "split_stream_signature",
    "verify_answer",
]

STREAM_SIGNATURE_PREFIX: Final = b": fxn-signature "
_STREAM_SIGNATURE_END: Final = b"\n\n"
_SIGNED_STREAM_TAIL: Final = len(STREAM_SIGNATURE_PREFIX) + 132 + len(_STREAM_SIGNATURE_END)

# The verdict of a check whose answer is not signed by the node expected there (missing, foreign or
# invalid signature): shared by ``fxn challenge`` and the scheduler.
WRONG_SIGNER: Final = "wrong_signer"

_FIRST_ERROR_STATUS: Final = 400

# -- signing answers (the node) -----------------------------------------------------------------------


@dataclass(slots=True)
class StreamSigner:
    """The running hash of a streamed answer's body, and the signature line that closes it."""

    _answer: AnswerSigner
    status: int
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)
    closed: bool = False

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def line(self) -> bytes:
        """``: fxn-signature 0x…\\n\\n`` over every byte passed to :meth:`update` (call once, last)."""
        self.closed = True
        signature = self._answer.sign(self.status, self._hash.hexdigest())
        return STREAM_SIGNATURE_PREFIX + signature.encode() + _STREAM_SIGNATURE_END


# Not frozen: one is built per request, and a frozen dataclass pays object.__setattr__ per field.
@dataclass(slots=True)
class AnswerSigner:
    """Signs the answers to one authenticated request: bound to the node, the caller, the request's
    body hash and nonce; each answer adds its status and the hash of its body."""

    signer: LocalSigner = field(repr=False)
    caller: str
    request_body_hash: str
    nonce: str

    def sign(self, status: int, body_hash: str) -> str:
        message = response_message(
            self.signer.address, self.caller, self.request_body_hash, self.nonce, status, body_hash
        )
        return "0x" + self.signer.sign(message)

    def plain(self, status: int, body: bytes) -> str:
        """The ``X-Fxn-Response-Signature`` value of a plain answer."""
        return self.sign(status, body_sha256(body))

    def stream(self, status: int) -> StreamSigner:
        return StreamSigner(self, status)


# -- checking answers (client and scheduler) ----------------------------------------------------------


def split_stream_signature(body: bytes) -> tuple[bytes, str] | None:
    """A streamed answer's signed bytes and its signature, or None when it does not end with the line."""
    if len(body) < _SIGNED_STREAM_TAIL or not body.endswith(_STREAM_SIGNATURE_END):
        return None
    start = len(body) - _SIGNED_STREAM_TAIL
    if body[start : start + len(STREAM_SIGNATURE_PREFIX)] != STREAM_SIGNATURE_PREFIX:
        return None
    signature = body[start + len(STREAM_SIGNATURE_PREFIX) : -len(_STREAM_SIGNATURE_END)]
    if not signature.isascii():
        return None
    return body[:start], signature.decode("ascii")


def _signed_by(node: str, message: str, signature: str) -> bool:
    sig = signature.strip()
    if not is_wellformed_signature(sig):
        return False
    try:
        return recover_address(message, sig) == node
    except SigningError:
        return False


@dataclass(frozen=True, slots=True)
class ExpectedAnswer:
    """What a caller knows about the answer to come: who must sign it, and the request it answers."""

    node: str  # lower-case
    caller: str  # lower-case
    request_body_hash: str
    nonce: str

    @classmethod
    def for_request(cls, node: str, caller: str, request_body: bytes, nonce: str) -> ExpectedAnswer:
        return cls(node.lower(), caller.lower(), body_sha256(request_body), nonce)

    def _message(self, status: int, body_hash: str) -> str:
        return response_message(self.node, self.caller, self.request_body_hash, self.nonce, status, body_hash)

    def check_node_header(self, headers: Mapping[str, str]) -> str | None:
        named = headers.get(HEADER_NODE, "")
        if named.strip().lower() != self.node:
            return f"the answer names node {named or '(none)'!r}, expected {self.node}"
        return None

    def check_plain(
        self, status: int, headers: Mapping[str, str], body: bytes, *, strict: bool = False
    ) -> str | None:
        """None when the plain answer is signed by the expected node; else what is wrong.

        A refusal from before the node verified the request (SPEC §5 steps 1-5: unknown caller, bad
        signature, stale timestamp, …) cannot be signed, and says so by carrying neither ``X-Fxn-Node``
        nor a signature; unless ``strict``, such an error answer is let through as the error it is
        (nothing in it is trusted). Everything else must be signed by the expected node.
        """
        if (
            not strict
            and status >= _FIRST_ERROR_STATUS
            and HEADER_NODE not in headers
            and HEADER_RESPONSE_SIGNATURE not in headers
        ):
            return None
        problem = self.check_node_header(headers)
        if problem is not None:
            return problem
        signature = headers.get(HEADER_RESPONSE_SIGNATURE)
        if signature is None:
            return f"the answer (HTTP {status}) carries no {HEADER_RESPONSE_SIGNATURE}"
        if not _signed_by(self.node, self._message(status, body_sha256(body)), signature):
            return f"{HEADER_RESPONSE_SIGNATURE} of the answer (HTTP {status}) is not {self.node}'s"
        return None

    def stream(self, status: int) -> StreamCheck:
        return StreamCheck(self, status)


@dataclass(slots=True)
class StreamCheck:
    """Checks a streamed answer as its bytes arrive: everything before the last line is hashed, and the
    last line must be the node's ``: fxn-signature`` over it."""

    expected: ExpectedAnswer
    status: int
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)
    _tail: bytearray = field(default_factory=bytearray, repr=False)

    def update(self, chunk: bytes) -> None:
        tail = self._tail
        tail += chunk
        surplus = len(tail) - _SIGNED_STREAM_TAIL
        if surplus > 0:
            self._hash.update(tail[:surplus])
            del tail[:surplus]

    def problem(self) -> str | None:
        """None when the stream ended with a valid signature line; else what is wrong (call at the end)."""
        tail = bytes(self._tail)
        split = split_stream_signature(tail)
        if split is None or split[0]:
            return "the stream does not end with a ': fxn-signature' line"
        message = self.expected._message(self.status, self._hash.hexdigest())
        if not _signed_by(self.expected.node, message, split[1]):
            return f"the stream's signature line is not {self.expected.node}'s"
        return None


@dataclass(frozen=True, slots=True)
class NodeReply:
    """An answer as a caller received it: status, the parsed JSON (or the text), and ``signer_problem``,
    None when the expected node signed it, else what is wrong with its signature."""

    status: int
    body: Any
    signer_problem: str | None = None


def verify_answer(
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
    ``request_body`` and ``nonce`` that ``caller_address`` sent (SPEC §5). The client library exports it
    as ``verify_response_signature``.

    * A plain answer: ``signature`` is its ``X-Fxn-Response-Signature`` header.
    * A streamed answer: leave ``signature`` out and pass the whole raw (transfer-decoded) stream as
      ``body``; its last line, ``: fxn-signature 0x…``, signs every byte before it.

    Never raises: a malformed address or signature is simply not a valid signature.
    """
    address, caller = node_address.strip(), caller_address.strip()
    if not is_wellformed_address(address) or not is_wellformed_address(caller):
        return False
    if signature is None:
        split = split_stream_signature(body)
        if split is None:
            return False
        body, signature = split
    expected = ExpectedAnswer.for_request(address, caller, request_body, nonce)
    return _signed_by(expected.node, expected._message(status, body_sha256(body)), signature)
