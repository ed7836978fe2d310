"""The wire protocol of SPEC §5 in one neutral package, imported by the node, the client and the scheduler.

What is here, and nowhere else:

* the header names and the stable reason codes (the error body's ``code``, the log field, the metric
  label), and the strict format checks of the four authentication headers (:mod:`.headers`);
* the signed messages: the legacy and the audience-bound v2 request messages, IDENTITY's, and the
  domain-separated ``fxn-response-v1`` response message (:mod:`.messages`);
* the two forms of a response signature, made by the node and checked by callers (:mod:`.answers`).
"""

from function_node.protocol.answers import (
    STREAM_SIGNATURE_PREFIX,
    WRONG_SIGNER,
    AnswerSigner,
    ExpectedAnswer,
    NodeReply,
    StreamCheck,
    StreamSigner,
    split_stream_signature,
    verify_answer,
)
from function_node.protocol.headers import (
    HEADER_ADDRESS,
    HEADER_AUTH_SCHEME,
    HEADER_NODE,
    HEADER_NONCE,
    HEADER_RESPONSE_SIGNATURE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAX_NONCE_CHARS,
    REASON_STATUS,
    V2_SCHEME,
    AuthHeaders,
    Reason,
    answer_is_signed,
    auth_error,
    is_fxn_header,
    is_protected_path,
    is_wellformed_address,
    is_wellformed_signature,
    parse_auth_headers,
)
from function_node.protocol.messages import (
    RESPONSE_SCHEME,
    identity_message,
    legacy_message,
    response_message,
    v2_message,
)

__all__ = [
    "HEADER_ADDRESS",
    "HEADER_AUTH_SCHEME",
    "HEADER_NODE",
    "HEADER_NONCE",
    "HEADER_RESPONSE_SIGNATURE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MAX_NONCE_CHARS",
    "REASON_STATUS",
    "RESPONSE_SCHEME",
    "STREAM_SIGNATURE_PREFIX",
    "V2_SCHEME",
    "WRONG_SIGNER",
    "AnswerSigner",
    "AuthHeaders",
    "ExpectedAnswer",
    "NodeReply",
    "Reason",
    "StreamCheck",
    "StreamSigner",
    "answer_is_signed",
    "auth_error",
    "identity_message",
    "is_fxn_header",
    "is_protected_path",
    "is_wellformed_address",
    "is_wellformed_signature",
    "legacy_message",
    "parse_auth_headers",
    "response_message",
    "split_stream_signature",
    "v2_message",
    "verify_answer",
]
