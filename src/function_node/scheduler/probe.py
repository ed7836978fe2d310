"""One node, one round: send every check's requests, time them, and hand the answers to the verdicts.

Order matters and is fixed: ``/health`` (reachable, and the node's address for v2 signatures), IDENTITY,
``/v1/models`` (which model to probe), ENDPOINT_REACHABLE for that model, the two-round matrix proof,
and a streamed chat completion. When a step that later ones depend on fails, those are recorded as
``skipped`` rather than silently missing, so every round has one row per check.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import orjson

from function_node.client import FxnSigner
from function_node.errors import SigningError
from function_node.scheduler.checks import (
    CHECK_ENDPOINT,
    CHECK_IDENTITY,
    CHECK_INFERENCE,
    CHECK_MATMUL,
    CHECK_REACHABLE,
    REASON_MALFORMED,
    REASON_SKIPPED,
    CheckResult,
    Commitment,
    ProofVerifier,
    StreamEvent,
    choose_rows,
    parse_commitment,
    summarize_stream,
    verify_endpoint,
    verify_identity,
    verify_proofs,
)
from function_node.scheduler.config import InferenceProbe, MatmulProbe
from function_node.signing import normalize_address

__all__ = ["NodeProbe", "ProbeReport", "TransportError"]

REASON_UNREACHABLE: Final = "unreachable"
REASON_TIMEOUT: Final = "timeout"
_NONCE_BYTES: Final = 16


class TransportError(Exception):
    """A request got no usable answer; ``reason`` is the stable code (unreachable, timeout, http_NNN)."""

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
        verifier: ProofVerifier,
        *,
        matmul: MatmulProbe,
        inference: InferenceProbe,
        timeout: float,
    ) -> None:
        self._session = session
        self._signer = signer
        self._verifier = verifier
        self._matmul = matmul
        self._inference = inference
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def run(self, url: str, expected_address: str = "") -> ProbeReport:
        results: list[CheckResult] = []
        verify_seconds: float | None = None

        reachable = await self._timed(CHECK_REACHABLE, lambda: self._health(url))
        results.append(reachable)
        if not reachable.ok:
            results += [_skipped(c) for c in (CHECK_IDENTITY, CHECK_ENDPOINT, CHECK_MATMUL, CHECK_INFERENCE)]
            return ProbeReport(url, "", tuple(results), None)
        # Sign v2 for the address the node claims; IDENTITY then proves the claim (or not).
        audience = str(reachable.values.get("address") or expected_address)

        identity = await self._timed(CHECK_IDENTITY, lambda: self._identity(url, audience, expected_address))
        results.append(identity)
        address = str(identity.values.get("address", "")) if identity.ok else ""

        model_or_failure = await self._model(url, audience)
        if isinstance(model_or_failure, CheckResult):
            results.append(model_or_failure)
        else:
            results.append(
                await self._timed(CHECK_ENDPOINT, lambda: self._endpoint(url, audience, model_or_failure))
            )

        matmul, verify_seconds = await self._matrix(url, audience)
        results.append(matmul)

        if not self._inference.enabled:
            results.append(CheckResult.passed(CHECK_INFERENCE, "disabled in scheduler.yaml"))
        elif isinstance(model_or_failure, CheckResult):
            results.append(CheckResult.failed(CHECK_INFERENCE, REASON_SKIPPED, "no model to probe"))
        else:
            results.append(
                await self._timed(CHECK_INFERENCE, lambda: self._chat(url, audience, model_or_failure))
            )
        return ProbeReport(url, address, tuple(results), verify_seconds)

    # -- the steps ---------------------------------------------------------------------------------

    async def _health(self, url: str) -> CheckResult:
        answer = await self._request("GET", url, "/health", None, audience="", sign=False)
        address = answer.get("address") if isinstance(answer, dict) else None
        if not isinstance(address, str):
            return CheckResult.failed(CHECK_REACHABLE, REASON_MALFORMED, "/health did not name an address")
        try:
            address = normalize_address(address)
        except SigningError:
            return CheckResult.failed(CHECK_REACHABLE, REASON_MALFORMED, "/health named no valid address")
        return CheckResult.passed(CHECK_REACHABLE, "health ok", address=address)

    async def _identity(self, url: str, audience: str, expected: str) -> CheckResult:
        nonce = secrets.token_hex(_NONCE_BYTES)
        answer = await self._challenge(url, audience, "IDENTITY", {"nonce": nonce})
        return verify_identity(answer, nonce=nonce, expected_address=expected)

    async def _model(self, url: str, audience: str) -> str | CheckResult:
        if self._inference.model:
            return self._inference.model
        try:
            answer = await self._request("GET", url, "/v1/models", None, audience=audience)
        except TransportError as exc:
            return CheckResult.failed(CHECK_ENDPOINT, exc.reason, f"/v1/models: {exc.detail}")
        data = answer.get("data") if isinstance(answer, dict) else None
        ids = [m.get("id") for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not ids:
            return CheckResult.failed(CHECK_ENDPOINT, REASON_MALFORMED, "/v1/models lists no model")
        return str(ids[0])

    async def _endpoint(self, url: str, audience: str, model: str) -> CheckResult:
        answer = await self._challenge(url, audience, "ENDPOINT_REACHABLE", {"model": model})
        return verify_endpoint(answer)

    async def _matrix(self, url: str, audience: str) -> tuple[CheckResult, float | None]:
        n, seed = self._matmul.size, "0x" + secrets.token_hex(32)
        payload = {"size": n, "seed": seed, "dtype": "int8", "backend": self._matmul.backend}
        started = time.perf_counter()
        try:
            answer = await self._challenge(url, audience, "MATRIX_MULTIPLICATION", payload)
        except TransportError as exc:
            return CheckResult.failed(CHECK_MATMUL, exc.reason, exc.detail), None
        round_one = time.perf_counter() - started
        commitment = parse_commitment(answer, seed=seed, size=n)
        if isinstance(commitment, CheckResult):
            return commitment.timed(round_one * 1000.0), None
        # Rows are drawn only now, after the root is in hand: the node cannot have known them.
        rows = choose_rows(n, self._matmul.rows)
        try:
            proofs = await self._challenge(
                url,
                audience,
                "MATRIX_MULTIPLICATION_PROOF",
                {"commitmentId": commitment.commitment_id, "rows": rows},
            )
        except TransportError as exc:
            return CheckResult.failed(CHECK_MATMUL, exc.reason, f"proof round: {exc.detail}"), None
        total = time.perf_counter() - started
        verify_started = time.perf_counter()
        verdict = await asyncio.to_thread(verify_proofs, commitment, rows, proofs, self._verifier)
        verify_seconds = time.perf_counter() - verify_started
        values = dict(verdict.values) | _throughput(commitment, round_one)
        values["verify_ms"] = verify_seconds * 1000.0
        return (
            CheckResult(CHECK_MATMUL, verdict.ok, verdict.reason, verdict.detail, total * 1000.0, values),
            verify_seconds,
        )

    async def _chat(self, url: str, audience: str, model: str) -> CheckResult:
        body = orjson.dumps(
            {
                "model": model,
                "messages": [{"role": "user", "content": self._inference.prompt}],
                "max_tokens": self._inference.max_tokens,
                "stream": True,
            }
        )
        path = _path(url, "/v1/chat/completions")
        headers = self._signer.headers("POST", path, body, node_address=audience or None)
        headers["Content-Type"] = "application/json"
        events: list[StreamEvent] = []
        started = time.perf_counter()
        try:
            async with self._session.post(
                url + "/v1/chat/completions", data=body, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status != 200:
                    raise _http_failure(resp.status, await resp.read())
                async for raw in resp.content:
                    line = raw.decode(errors="replace").strip()
                    if line.startswith("data:"):
                        events.append(StreamEvent(time.perf_counter() - started, line[5:].strip()))
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

    async def _challenge(self, url: str, audience: str, type_: str, payload: object) -> Any:
        return await self._request(
            "POST", url, "/challenge", {"type": type_, "payload": payload}, audience=audience
        )

    async def _request(
        self, method: str, url: str, route: str, body: object, *, audience: str, sign: bool = True
    ) -> Any:
        raw = b"" if body is None else orjson.dumps(body)
        headers = (
            self._signer.headers(method, _path(url, route), raw, node_address=audience or None)
            if sign
            else {}
        )
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method,
                url + route,
                data=raw if body is not None else None,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                content = await resp.read()
                if resp.status != 200:
                    raise _http_failure(resp.status, content)
        except TimeoutError as exc:
            raise TransportError(REASON_TIMEOUT, f"{route}: no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(REASON_UNREACHABLE, f"{route}: {type(exc).__name__}: {exc}") from exc
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise TransportError(REASON_MALFORMED, f"{route}: the answer is not JSON") from exc


def _path(url: str, route: str) -> str:
    """The request path as sent on the wire (a node behind a path prefix signs the prefix too)."""
    return urlsplit(url).path.rstrip("/") + route


def _http_failure(status: int, content: bytes) -> TransportError:
    """``http_<status>`` plus the node's error code (e.g. ``bad_signature``) in the detail."""
    code, message = "", content[:200].decode(errors="replace")
    try:
        error = orjson.loads(content).get("error", {})
        code, message = str(error.get("code") or ""), str(error.get("message") or message)
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return TransportError(f"http_{status}", f"{code}: {message}" if code else message)


def _throughput(commitment: Commitment, round_one_seconds: float) -> dict[str, Any]:
    """Ops per second bounded by the scheduler's own clock: 2n³ over round one's round-trip."""
    ops = 2.0 * float(commitment.size) ** 3
    values: dict[str, Any] = {
        "n": commitment.size,
        "round_one_ms": round_one_seconds * 1000.0,
        "tops": ops / round_one_seconds / 1e12 if round_one_seconds > 0 else None,
        "backend": commitment.backend,
    }
    if commitment.node_compute_ms:
        values["node_tops"] = ops / (commitment.node_compute_ms / 1000.0) / 1e12
    return values


def _skipped(check: str) -> CheckResult:
    return CheckResult.failed(check, REASON_SKIPPED, "the node is not reachable")
