"""One node, one round: send every check's requests, time them, and hand the answers to the verdicts.

Order matters and is fixed: ``/health`` (reachable; its address is only a hint, refused when it
contradicts the expected one), IDENTITY, ``/v1/models`` (which model to probe), ENDPOINT_REACHABLE for
that model, the two-round matrix proof, and a streamed chat completion. The expected address comes
from the provider registry entry (or scheduler.yaml); with none, the one ``/health`` gives is trusted
for this round. Every answer must be signed by it (SPEC §5), else its check fails with
``wrong_signer``. A node whose IDENTITY failed gets no further checks this round: each of them is
recorded as ``skipped``, so every round has one row per check.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from function_node.challenges.matmul.driver import ProofReport, run_matrix_proof
from function_node.client import FxnClientSession, FxnSigner, NodeIdentityError
from function_node.protocol import NodeReply
from function_node.scheduler.checks import (
    CHECK_ENDPOINT,
    CHECK_IDENTITY,
    CHECK_INFERENCE,
    CHECK_MATMUL,
    CHECK_REACHABLE,
    REASON_MALFORMED,
    REASON_SKIPPED,
    REASON_UNEXPECTED_ADDRESS,
    REASON_WRONG_SIGNER,
    CheckResult,
    StreamEvent,
    summarize_stream,
    verify_endpoint,
    verify_identity,
)
from function_node.scheduler.config import InferenceProbe, MatmulProbe

__all__ = ["NodeProbe", "ProbeReport", "TransportError"]

REASON_UNREACHABLE: Final = "unreachable"
REASON_TIMEOUT: Final = "timeout"
_NONCE_BYTES: Final = 16
_LATER_CHECKS: Final = (CHECK_ENDPOINT, CHECK_MATMUL, CHECK_INFERENCE)


class TransportError(Exception):
    """A request got no usable answer; ``reason`` is the stable code (unreachable, timeout, http_NNN,
    wrong_signer)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ProbeReport:
    node_url: str
    address: str  # what the node proved it is ("" if it did not get that far)
    results: tuple[CheckResult, ...]
    verify_seconds: float | None  # the scheduler's own verification time of the matrix proof


class NodeProbe:
    """Runs the checks against one node through a shared session, signing as the scheduler."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signer: FxnSigner,
        *,
        matmul: MatmulProbe,
        inference: InferenceProbe,
        timeout: float,
        executor: Executor | None = None,
    ) -> None:
        self._session = session
        self._signer = signer
        self._executor = executor
        self._matmul = matmul
        self._inference = inference
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def run(self, url: str, expected_address: str = "") -> ProbeReport:
        fxn = FxnClientSession(self._signer, expected_address or None, strict=True, session=self._session)
        reachable = await self._timed(CHECK_REACHABLE, lambda: self._health(fxn, url))
        if not reachable.ok:
            skipped = [_skipped(c, "the node is not reachable") for c in (CHECK_IDENTITY, *_LATER_CHECKS)]
            return ProbeReport(url, "", (reachable, *skipped), None)
        prover = str(reachable.values["address"])

        identity = await self._timed(CHECK_IDENTITY, lambda: self._identity(fxn, url, prover))
        if not identity.ok:
            skipped = [_skipped(c, f"IDENTITY failed ({identity.reason})") for c in _LATER_CHECKS]
            return ProbeReport(url, "", (reachable, identity, *skipped), None)
        results = [reachable, identity]

        model_or_failure = await self._model(fxn, url)
        if isinstance(model_or_failure, CheckResult):
            results.append(model_or_failure)
        else:
            results.append(
                await self._timed(CHECK_ENDPOINT, lambda: self._endpoint(fxn, url, model_or_failure))
            )

        matmul, verify_seconds = await self._matrix(fxn, url, prover)
        results.append(matmul)

        if not self._inference.enabled:
            results.append(CheckResult.passed(CHECK_INFERENCE, "disabled in scheduler.yaml"))
        elif isinstance(model_or_failure, CheckResult):
            results.append(CheckResult.failed(CHECK_INFERENCE, REASON_SKIPPED, "no model to probe"))
        else:
            results.append(await self._timed(CHECK_INFERENCE, lambda: self._chat(fxn, url, model_or_failure)))
        return ProbeReport(url, prover, tuple(results), verify_seconds)

    # -- the steps ---------------------------------------------------------------------------------

    async def _health(self, fxn: FxnClientSession, url: str) -> CheckResult:
        try:
            address = await fxn.node_address(url)
        except NodeIdentityError as exc:
            return CheckResult.failed(CHECK_REACHABLE, REASON_UNEXPECTED_ADDRESS, str(exc))
        except TimeoutError as exc:
            raise TransportError(REASON_TIMEOUT, "/health: no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(REASON_UNREACHABLE, f"/health: {type(exc).__name__}: {exc}") from exc
        if address is None:
            return CheckResult.failed(CHECK_REACHABLE, REASON_MALFORMED, "/health named no valid address")
        return CheckResult.passed(CHECK_REACHABLE, "health ok", address=address)

    async def _identity(self, fxn: FxnClientSession, url: str, prover: str) -> CheckResult:
        nonce = secrets.token_hex(_NONCE_BYTES)
        answer = await self._challenge(fxn, url, "IDENTITY", {"nonce": nonce})
        return verify_identity(answer, nonce=nonce, expected_address=prover)

    async def _model(self, fxn: FxnClientSession, url: str) -> str | CheckResult:
        if self._inference.model:
            return self._inference.model
        try:
            answer = await self._json(fxn, "GET", url + "/v1/models", None)
        except TransportError as exc:
            return CheckResult.failed(CHECK_ENDPOINT, exc.reason, f"/v1/models: {exc.detail}")
        data = answer.get("data") if isinstance(answer, dict) else None
        ids = [m.get("id") for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not ids:
            return CheckResult.failed(CHECK_ENDPOINT, REASON_MALFORMED, "/v1/models lists no model")
        return str(ids[0])

    async def _endpoint(self, fxn: FxnClientSession, url: str, model: str) -> CheckResult:
        answer = await self._challenge(fxn, url, "ENDPOINT_REACHABLE", {"model": model})
        return verify_endpoint(answer)

    async def _matrix(self, fxn: FxnClientSession, url: str, prover: str) -> tuple[CheckResult, float | None]:
        async def send(body: dict[str, Any]) -> NodeReply:
            try:
                return await fxn.exchange("POST", url + "/challenge", body, timeout=self._timeout)
            except TimeoutError as exc:
                raise TransportError(REASON_TIMEOUT, "/challenge: no answer in time") from exc
            except aiohttp.ClientError as exc:
                raise TransportError(REASON_UNREACHABLE, f"/challenge: {type(exc).__name__}: {exc}") from exc

        try:
            report = await run_matrix_proof(
                send,
                self._matmul.size,
                prover=prover,
                rows=self._matmul.rows,
                backend=self._matmul.backend,
                executor=self._executor,
            )
        except TransportError as exc:
            return CheckResult.failed(CHECK_MATMUL, exc.reason, exc.detail), None
        return _matrix_result(report), report.verify_s if report.verify_s else None

    async def _chat(self, fxn: FxnClientSession, url: str, model: str) -> CheckResult:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": self._inference.prompt}],
            "max_tokens": self._inference.max_tokens,
            "stream": True,
        }
        events: list[StreamEvent] = []
        started = time.perf_counter()
        pending = b""
        try:
            async with await fxn.request(
                "POST", url + "/v1/chat/completions", json=body, timeout=self._timeout
            ) as answer:
                if answer.status != 200:
                    reply = await answer.reply()
                    _raise_unsigned(reply)
                    raise _http_failure(reply)
                async for chunk in answer.iter_chunks():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        line = raw.decode(errors="replace").strip()
                        if line.startswith("data:"):
                            events.append(StreamEvent(time.perf_counter() - started, line[5:].strip()))
        except NodeIdentityError as exc:
            return CheckResult.failed(CHECK_INFERENCE, REASON_WRONG_SIGNER, str(exc))
        except TimeoutError as exc:
            raise TransportError(REASON_TIMEOUT, "/v1/chat/completions: no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(REASON_UNREACHABLE, f"{type(exc).__name__}: {exc}") from exc
        return summarize_stream(events)

    # -- transport ---------------------------------------------------------------------------------

    async def _timed(self, check: str, step: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
        started = time.perf_counter()
        try:
            result = await step()
        except TransportError as exc:
            result = CheckResult.failed(check, exc.reason, exc.detail)
        if result.rtt_ms is not None:
            return result
        return result.timed((time.perf_counter() - started) * 1000.0)

    async def _challenge(self, fxn: FxnClientSession, url: str, type_: str, payload: object) -> Any:
        return await self._json(fxn, "POST", url + "/challenge", {"type": type_, "payload": payload})

    async def _json(self, fxn: FxnClientSession, method: str, url: str, body: object) -> Any:
        """The answer's JSON; TransportError when it is not a signed 200 with a JSON body."""
        route = url.split("/", 3)[-1]
        try:
            reply = await fxn.exchange(method, url, body, timeout=self._timeout)
        except TimeoutError as exc:
            raise TransportError(REASON_TIMEOUT, f"/{route}: no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(REASON_UNREACHABLE, f"/{route}: {type(exc).__name__}: {exc}") from exc
        _raise_unsigned(reply)
        if reply.status != 200:
            raise _http_failure(reply)
        if isinstance(reply.body, str):
            raise TransportError(REASON_MALFORMED, f"/{route}: the answer is not JSON")
        return reply.body


def _raise_unsigned(reply: NodeReply) -> None:
    """wrong_signer for an answer that is not the expected node's, naming the node's own error code."""
    if reply.signer_problem is None:
        return
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    code = f" {error['code']}" if isinstance(error, dict) and isinstance(error.get("code"), str) else ""
    raise TransportError(REASON_WRONG_SIGNER, f"HTTP {reply.status}{code}: {reply.signer_problem}")


def _http_failure(reply: NodeReply) -> TransportError:
    """``http_<status>`` plus the node's error code (e.g. ``bad_signature``) in the detail."""
    body = reply.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
        return TransportError(f"http_{reply.status}", f"{code}: {message}" if code else message)
    return TransportError(f"http_{reply.status}", orjson.dumps(body).decode()[:200])


def _matrix_result(report: ProofReport) -> CheckResult:
    """The matrix proof's verdict with what was measured: ops per second bounded by the scheduler's
    own clock (2n³ over round one's round trip) and the node's own claim."""
    ops = 2.0 * float(report.size) ** 3
    values: dict[str, Any] = {
        "n": report.size,
        "rows": len(report.rows),
        "round_one_ms": report.round_trip_s * 1000.0,
        "tops": report.implied_tops or None,
        "backend": str(report.commitment.get("backend", "")),
    }
    compute = report.commitment.get("computationTimeMs")
    if isinstance(compute, int | float) and compute > 0:
        values["node_tops"] = ops / (compute / 1000.0) / 1e12
    if report.verify_s:
        values["verify_ms"] = report.verify_s * 1000.0
    rtt_ms = report.total_s * 1000.0
    if report.ok:
        detail = f"{len(report.rows)} rows verified at n={report.size}"
        return CheckResult(CHECK_MATMUL, True, "", detail, rtt_ms, values)
    return CheckResult(CHECK_MATMUL, False, report.reason, report.detail, rtt_ms, values)


def _skipped(check: str, why: str) -> CheckResult:
    return CheckResult.failed(check, REASON_SKIPPED, why)
