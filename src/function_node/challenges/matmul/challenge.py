"""MATRIX_MULTIPLICATION and MATRIX_MULTIPLICATION_PROOF behind the Challenge protocol (SPEC §7.2).

Concurrency: one computation runs at a time (a single-worker executor: the GEMM already uses every core
or the whole GPU, so running two at once only slows both). Up to ``maxPendingProofs`` jobs may be queued
or hold a commitment; past that the node answers 429 ``too_many_pending_proofs`` and the scheduler
retries after ``proofTtl``. Explicit multiplications count against the same bound.

With the Redis nonce store, every commitment is also published to Redis (:mod:`.shared_store`), and
round two is answered from there, so it may reach any worker or replica; a commitment still answers
one proof request in all.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from function_node.challenges.base import ChallengeContext
from function_node.challenges.matmul.commitment import (
    Commitment,
    CommitmentStore,
    MerkleTree,
    StoreFullError,
    UnknownCommitmentError,
)
from function_node.config.settings import MatmulSettings
from function_node.errors import ChallengeError

if TYPE_CHECKING:
    from function_node.challenges.matmul.compute import MatmulBackend, NumpyBackend
    from function_node.challenges.matmul.shared_store import RedisCommitments

# The numpy modules (compute, explicit, generate, verify) are imported where a challenge first needs
# them, not here: the node builds this service at start and numpy's ~10 MB would otherwise be in
# every node's memory before (or without) the first matrix challenge.

__all__ = ["MatmulService", "MatrixMultiplicationChallenge", "MatrixProofChallenge"]

DTYPES: Final = ("int8",)
BACKENDS: Final = ("auto", "cpu", "gpu")
_BUSY_STATUS: Final = 429
_UNAVAILABLE_STATUS: Final = 503


@dataclass(slots=True)
class MatmulService:
    """State the two matrix challenges share: limits, backends, the commitment store, the worker."""

    limits: MatmulSettings
    cpu_threads: int = 2
    shared: RedisCommitments | None = None
    store: CommitmentStore = field(init=False)
    _worker: ThreadPoolExecutor = field(init=False)
    _blocks: ThreadPoolExecutor = field(init=False)
    _cpu: NumpyBackend | None = field(init=False, default=None)
    _gpu: MatmulBackend | None = field(init=False, default=None)
    _gpu_checked: bool = field(init=False, default=False)
    _jobs: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.store = CommitmentStore(ttl=self.limits.proof_ttl, capacity=self.limits.max_pending_proofs)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fxn-matmul")
        self._blocks = ThreadPoolExecutor(max_workers=self.cpu_threads, thread_name_prefix="fxn-matmul-blk")

    def cpu(self) -> NumpyBackend:
        """The numpy backend, built (and numpy imported) on first use."""
        if self._cpu is None:
            from function_node.challenges.matmul.compute import NumpyBackend

            self._cpu = NumpyBackend(executor=self._blocks)
        return self._cpu

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def gpu(self) -> MatmulBackend | None:
        """The CUDA backend, or None; the first call imports torch in the worker thread."""
        if not self._gpu_checked:
            from function_node.challenges.matmul.compute import TorchBackend, cuda_available

            self._gpu_checked = True
            if await self._run(cuda_available):
                self._gpu = TorchBackend("cuda")
        return self._gpu

    async def choose(self, backend: str, n: int) -> MatmulBackend:
        if backend not in BACKENDS:
            raise ChallengeError(
                f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}", code="invalid_backend"
            )
        if n > self.limits.max_size:
            raise ChallengeError(f"size {n} exceeds maxSize={self.limits.max_size}", code="size_too_large")
        gpu = await self.gpu() if backend in ("auto", "gpu") else None
        if backend == "gpu" and gpu is None:
            raise ChallengeError(
                'backend "gpu" was asked for but this node has no CUDA device', code="no_gpu"
            )
        if gpu is not None:
            return gpu
        if n > self.limits.max_cpu_size:
            raise ChallengeError(
                f"size {n} exceeds maxCpuSize={self.limits.max_cpu_size} for the CPU backend",
                code="size_too_large",
            )
        return self.cpu()

    def _enter(self) -> None:
        if self._jobs >= self.limits.max_pending_proofs:
            raise ChallengeError(
                f"too many matrix challenges in progress (maxPendingProofs={self.limits.max_pending_proofs});"
                " retry later",
                status=_BUSY_STATUS,
                code="too_many_pending_proofs",
            )
        self._jobs += 1

    async def verifiable(self, payload: dict[str, Any], ctx: ChallengeContext) -> dict[str, Any]:
        from function_node.challenges.matmul.generate import MatrixKeys, Seed, parse_seed

        size = payload.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ChallengeError("size must be a positive integer", code="invalid_size")
        try:
            seed = parse_seed(payload["seed"]) if "seed" in payload else Seed(secrets.token_bytes(32))
        except ValueError as exc:
            raise ChallengeError(str(exc), code="invalid_seed") from None
        dtype = payload.get("dtype", "int8")
        if dtype not in DTYPES:
            raise ChallengeError(
                f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", code="invalid_dtype"
            )
        backend = await self.choose(payload.get("backend", "auto"), size)
        keys = MatrixKeys.bind(seed, ctx.signer.address)  # bound to this node (SPEC §7.2)
        self._enter()
        try:
            try:
                self.store.reserve()
            except StoreFullError:
                raise ChallengeError(
                    f"{self.limits.max_pending_proofs} proofs are pending (maxPendingProofs); retry after "
                    f"{self.limits.proof_ttl:g}s",
                    status=_BUSY_STATUS,
                    code="too_many_pending_proofs",
                ) from None
            try:
                result = await self._run(backend.compute, size, keys)
                tree = await self._run(MerkleTree.build, result.digests.tolist())
                info = await self._run(backend.device_info)
            except BaseException:
                self.store.release()
                raise
            digests = result.digests.tolist()
            commitment_id = self.store.put(seed.hex, size, digests, tree)
            if self.shared is not None:
                await self._publish(commitment_id, size, digests)
        finally:
            self._jobs -= 1
        flops = 2 * size**3
        ops_per_s = flops / result.gemm_seconds if result.gemm_seconds > 0 else 0.0
        ctx.metrics.matmul_tops.labels(backend.name).set(ops_per_s / 1e12)
        return {
            "computationTimeMs": result.gemm_seconds * 1000,
            "gflops": ops_per_s / 1e9,
            "flops": flops,
            "backend": backend.name,
            "device": backend.device,
            "deviceInfo": info.as_json(),
            "matrixSize": size,
            "merkleRoot": "0x" + tree.root.hex(),
            "resultSamples": result.samples,
            "seed": seed.hex,
            "dtype": dtype,
            "commitmentId": commitment_id,
            "totalTimeMs": result.total_seconds * 1000,
            "proofTtlMs": self.limits.proof_ttl * 1000,
            "prover": ctx.signer.address,
        }

    async def explicit(self, payload: dict[str, Any], ctx: ChallengeContext) -> dict[str, Any]:
        from function_node.challenges.matmul.compute import cpu_device_info
        from function_node.challenges.matmul.explicit import compute_explicit

        self._enter()
        try:  # parsing and validating 2 × 1024² numbers is work too: all of it on the worker
            result = await self._run(compute_explicit, payload, self.limits.max_explicit_size)
            info = await self._run(cpu_device_info)
        finally:
            self._jobs -= 1
        m, k, p = result.shape
        return {
            "C": result.c_json,
            "computationTimeMs": result.gemm_seconds * 1000,
            "gflops": result.flops / result.gemm_seconds / 1e9 if result.gemm_seconds > 0 else 0.0,
            "flops": result.flops,
            "backend": "cpu",
            "device": "cpu",
            "deviceInfo": info.as_json(),
            "matrixSize": m,
            "shape": [m, k, p],
            "merkleRoot": None,
            "resultSamples": [{"row": 0, "col": 0, "value": result.first}],
            "seed": None,
            "dtype": "float64",
            "commitmentId": None,
            "totalTimeMs": result.gemm_seconds * 1000,
            "prover": ctx.signer.address,
        }

    async def _publish(self, commitment_id: str, size: int, digests: list[int]) -> None:
        from function_node.challenges.matmul.shared_store import SharedStoreError

        assert self.shared is not None
        try:
            await self.shared.publish(commitment_id, size, digests)
        except SharedStoreError as exc:
            self.store.take(commitment_id)  # round two could not be answered everywhere: no commitment
            raise ChallengeError(
                str(exc), status=_UNAVAILABLE_STATUS, code="commitment_store_unavailable"
            ) from exc

    async def prove(self, payload: Any) -> dict[str, Any]:
        commitment_id, rows = _proof_request(payload)
        if self.shared is None:
            commitment = self._peek_local(commitment_id)
            _check_rows(rows, commitment.size)
            commitment = self.store.take(commitment_id)
            return _proof_answer(commitment_id, rows, commitment.digests, commitment.tree)
        return await self._prove_shared(commitment_id, rows)

    async def _prove_shared(self, commitment_id: str, rows: list[int]) -> dict[str, Any]:
        from function_node.challenges.matmul.shared_store import SharedStoreError

        assert self.shared is not None
        try:
            found = await self.shared.peek(commitment_id)
            if not isinstance(found, str):
                _check_rows(rows, found.size)
                found = await self.shared.take(commitment_id)  # of concurrent takes, one wins
        except SharedStoreError as exc:
            raise ChallengeError(
                str(exc), status=_UNAVAILABLE_STATUS, code="commitment_store_unavailable"
            ) from exc
        if isinstance(found, str):
            raise self._unknown(commitment_id, self.store.reason_gone(commitment_id) or found)
        local = self.store.discard(commitment_id)  # this process's copy, if round one came here
        tree = local.tree if local is not None else await self._run(MerkleTree.build, list(found.digests))
        return _proof_answer(commitment_id, rows, found.digests, tree)

    def _peek_local(self, commitment_id: str) -> Commitment:
        try:
            return self.store.peek(commitment_id)
        except UnknownCommitmentError as exc:
            raise self._unknown(commitment_id, exc.reason) from None

    def _unknown(self, commitment_id: str, reason: str) -> ChallengeError:
        hint = {
            "used": "; each commitment answers one proof request",
            "expired": f"; proofs are kept for {self.limits.proof_ttl:g}s",
        }.get(reason, "")
        return ChallengeError(
            f"commitmentId {commitment_id!r} is {reason}{hint}", code=f"commitment_{reason}"
        )

    async def close(self) -> None:
        self.store.clear()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._blocks.shutdown(wait=False, cancel_futures=True)
        if self.shared is not None:
            await self.shared.close()
            self.shared = None


def _proof_request(payload: Any) -> tuple[str, list[int]]:
    from function_node.challenges.matmul.verify import MAX_PROOF_ROWS

    if not isinstance(payload, dict):
        raise ChallengeError('payload must be {"commitmentId", "rows"}', code="invalid_proof_request")
    commitment_id, rows = payload.get("commitmentId"), payload.get("rows")
    if not isinstance(commitment_id, str) or not commitment_id:
        raise ChallengeError("commitmentId must be a non-empty string", code="invalid_proof_request")
    if not isinstance(rows, list) or not rows:
        raise ChallengeError("rows must be a non-empty list of row numbers", code="invalid_rows")
    if len(rows) > MAX_PROOF_ROWS:
        raise ChallengeError(
            f"at most {MAX_PROOF_ROWS} rows per proof, got {len(rows)}", code="too_many_rows"
        )
    if any(isinstance(r, bool) or not isinstance(r, int) for r in rows):
        raise ChallengeError("rows must be integers", code="invalid_rows")
    return commitment_id, rows


def _check_rows(rows: list[int], size: int) -> None:
    bad = [r for r in rows if not 0 <= r < size]
    if bad:
        raise ChallengeError(f"rows {bad} are out of range 0..{size - 1}", code="row_out_of_range")


def _proof_answer(
    commitment_id: str, rows: list[int], digests: Sequence[int], tree: MerkleTree
) -> dict[str, Any]:
    return {
        "commitmentId": commitment_id,
        "proofs": [
            {"row": r, "digest": str(digests[r]), "siblings": ["0x" + s.hex() for s in tree.siblings(r)]}
            for r in rows
        ],
    }


@dataclass(slots=True)
class MatrixMultiplicationChallenge:
    """Round one: the explicit, random and verifiable forms."""

    service: MatmulService
    type: ClassVar[str] = "MATRIX_MULTIPLICATION"

    async def run(self, payload: Any, ctx: ChallengeContext) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ChallengeError(
                'payload must be {"A", "B"}, {"size"} or {"size", "seed", "dtype", "backend"}',
                code="invalid_payload",
            )
        from function_node.challenges.matmul.explicit import is_explicit

        if is_explicit(payload):
            return await self.service.explicit(payload, ctx)
        if "size" not in payload:
            raise ChallengeError('payload needs "size" (or "A" and "B")', code="invalid_payload")
        return await self.service.verifiable(payload, ctx)

    async def close(self) -> None:
        await self.service.close()


@dataclass(slots=True)
class MatrixProofChallenge:
    """Round two: Merkle proofs for rows chosen after the root; each commitment answers once."""

    service: MatmulService
    type: ClassVar[str] = "MATRIX_MULTIPLICATION_PROOF"

    async def run(self, payload: Any, ctx: ChallengeContext) -> dict[str, Any]:
        return await self.service.prove(payload)

    async def close(self) -> None:
        await self.service.close()
