"""Verdicts over what a node answered: pure functions, no I/O, so each rule is tested on its own (the
matrix proof's verdict lives with its driver, :mod:`function_node.challenges.matmul.driver`).

:mod:`function_node.scheduler.probe` sends the requests and times them; this module decides whether the
answers hold up. Each failed check carries a stable reason code (the ``REASON_*`` constants), shown in
``fxn scheduler status`` and used as the ``reason`` label of ``fxn_scheduler_checks_total``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from function_node.errors import SigningError
from function_node.protocol import WRONG_SIGNER, identity_message
from function_node.signing import normalize_address, recover_address

__all__ = [
    "CHECKS",
    "CHECK_ENDPOINT",
    "CHECK_IDENTITY",
    "CHECK_INFERENCE",
    "CHECK_MATMUL",
    "CHECK_REACHABLE",
    "REASON_WRONG_SIGNER",
    "CheckResult",
    "StreamEvent",
    "summarize_stream",
    "verify_endpoint",
    "verify_identity",
]

CHECK_REACHABLE: Final = "reachable"  # GET /health answers with the node's address
CHECK_IDENTITY: Final = "identity"
CHECK_ENDPOINT: Final = "endpoint"
CHECK_MATMUL: Final = "matmul"
CHECK_INFERENCE: Final = "inference"
CHECKS: Final = (CHECK_REACHABLE, CHECK_IDENTITY, CHECK_ENDPOINT, CHECK_MATMUL, CHECK_INFERENCE)

REASON_MALFORMED: Final = "malformed_answer"
REASON_NONCE_MISMATCH: Final = "nonce_mismatch"
REASON_BAD_SIGNATURE: Final = "bad_signature"
REASON_SIGNER_MISMATCH: Final = "signer_mismatch"  # signature valid, but by another key than "address"
REASON_UNEXPECTED_ADDRESS: Final = "unexpected_address"  # not the address the scheduler expects there
REASON_WRONG_SIGNER: Final = WRONG_SIGNER  # the answer is not signed by the node expected there
REASON_BACKEND_UNREACHABLE: Final = "backend_unreachable"
REASON_NO_TOKENS: Final = "no_tokens"
REASON_STREAM_ERROR: Final = "stream_error"
REASON_STREAM_UNTERMINATED: Final = "stream_unterminated"
REASON_SKIPPED: Final = "skipped"  # an earlier check failed, so this one could not run


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of one check on one node. ``reason`` is empty exactly when ``ok``."""

    check: str
    ok: bool
    reason: str = ""
    detail: str = ""
    rtt_ms: float | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, check: str, detail: str = "", **values: Any) -> CheckResult:
        return cls(check, True, "", detail, None, values)

    @classmethod
    def failed(cls, check: str, reason: str, detail: str, **values: Any) -> CheckResult:
        return cls(check, False, reason, detail, None, values)

    def timed(self, rtt_ms: float) -> CheckResult:
        return CheckResult(self.check, self.ok, self.reason, self.detail, rtt_ms, self.values)


def verify_identity(answer: object, *, nonce: str, expected_address: str = "") -> CheckResult:
    """IDENTITY (SPEC §7.1): the signature over ``address.ipAddress.nonce`` recovers to ``address``,
    the nonce is the one the scheduler sent, and ``address`` is the one expected (if one is)."""
    if not isinstance(answer, Mapping):
        return CheckResult.failed(CHECK_IDENTITY, REASON_MALFORMED, "the answer is not a JSON object")
    address, ip, signature = answer.get("address"), answer.get("ipAddress"), answer.get("signature")
    if not isinstance(address, str) or not isinstance(ip, str) or not isinstance(signature, str):
        return CheckResult.failed(
            CHECK_IDENTITY, REASON_MALFORMED, "address, ipAddress and signature must be strings"
        )
    if answer.get("nonce") != nonce:
        return CheckResult.failed(
            CHECK_IDENTITY, REASON_NONCE_MISMATCH, f"the node answered nonce {answer.get('nonce')!r}"
        )
    try:
        claimed = normalize_address(address)
        signer = recover_address(identity_message(address, ip, nonce), signature)
    except SigningError as exc:
        return CheckResult.failed(CHECK_IDENTITY, REASON_BAD_SIGNATURE, str(exc))
    if signer != claimed:
        return CheckResult.failed(
            CHECK_IDENTITY, REASON_SIGNER_MISMATCH, f"signed by {signer}, but the node says {claimed}"
        )
    if expected_address and claimed != normalize_address(expected_address):
        return CheckResult.failed(
            CHECK_IDENTITY,
            REASON_UNEXPECTED_ADDRESS,
            f"expected {normalize_address(expected_address)}, the node is {claimed}",
        )
    gpus = answer.get("gpuStats")
    return CheckResult.passed(
        CHECK_IDENTITY,
        f"{claimed} ip={ip or '-'}",
        address=claimed,
        ip=ip,
        gpus=len(gpus) if isinstance(gpus, list) else 0,
        version=str(answer.get("version", "")),
    )


def verify_endpoint(answer: object) -> CheckResult:
    """ENDPOINT_REACHABLE (SPEC §7.3) for a model: every backend of it must be reachable."""
    raw = answer if isinstance(answer, list) else [answer]
    items = [i for i in raw if isinstance(i, Mapping) and isinstance(i.get("reachable"), bool)]
    if not items or len(items) != len(raw):
        return CheckResult.failed(CHECK_ENDPOINT, REASON_MALFORMED, 'expected {"reachable": bool, ...} items')
    up = sum(1 for i in items if i["reachable"])
    latencies = [float(i["latencyMs"]) for i in items if isinstance(i.get("latencyMs"), int | float)]
    values = {"reachable": up, "backends": len(items), "latency_ms": max(latencies, default=None)}
    if up < len(items):
        return CheckResult.failed(
            CHECK_ENDPOINT, REASON_BACKEND_UNREACHABLE, f"{len(items) - up} of {len(items)} down", **values
        )
    return CheckResult.passed(CHECK_ENDPOINT, f"{up}/{len(items)} backends up", **values)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE ``data:`` payload and when it arrived (seconds since the request was sent)."""

    at: float
    data: str


def summarize_stream(events: Sequence[StreamEvent]) -> CheckResult:
    """Time to first token and tokens per second of a streamed chat completion.

    A token is counted per chunk carrying non-empty ``delta.content`` (the OpenAI servers send one token
    per chunk); the rate is over the interval from the first to the last content chunk.
    """
    token_times: list[float] = []
    done = False
    for event in events:
        if event.data.strip() == "[DONE]":
            done = True
            continue
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return CheckResult.failed(CHECK_INFERENCE, REASON_STREAM_ERROR, "an event is not JSON")
        if not isinstance(chunk, dict):
            return CheckResult.failed(CHECK_INFERENCE, REASON_STREAM_ERROR, "an event is not a JSON object")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            return CheckResult.failed(CHECK_INFERENCE, REASON_STREAM_ERROR, f"error event: {message}")
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and delta.get("content"):
                token_times.append(event.at)
    if not token_times:
        return CheckResult.failed(CHECK_INFERENCE, REASON_NO_TOKENS, "the stream carried no content")
    if not done:
        return CheckResult.failed(CHECK_INFERENCE, REASON_STREAM_UNTERMINATED, "no data: [DONE] at the end")
    span = token_times[-1] - token_times[0]
    rate = (len(token_times) - 1) / span if span > 0 else None
    ttft_ms = token_times[0] * 1000.0
    return CheckResult.passed(
        CHECK_INFERENCE,
        f"{len(token_times)} tokens, first after {ttft_ms:.0f} ms",
        tokens=len(token_times),
        ttft_ms=ttft_ms,
        tokens_per_s=rate,
    )
