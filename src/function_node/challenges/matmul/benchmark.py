"""Timing the matrix challenge against a bare GEMM of the same size (used by ``fxn bench matmul``/bench/)."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from function_node.challenges.matmul.commitment import MerkleTree
from function_node.challenges.matmul.compute import MatmulBackend, TorchBackend
from function_node.challenges.matmul.generate import MatrixKeys, Seed, generate_rows_torch

__all__ = ["BenchRow", "bare_gemm_seconds", "bench_size", "default_sizes", "elementwise_passes"]

_MIN_SIZE: Final = 256
# Benchmarks compute for a fixed prover: the cost does not depend on the address, only the values do.
BENCH_PROVER: Final = "0x" + "fb" * 20
_GPU_MEMORY_SHARE: Final = 0.5
_BYTES_PER_ELEMENT: Final = 16  # A, B (int8), C (int32) and the digest temporaries, with headroom


@dataclass(frozen=True, slots=True)
class BenchRow:
    n: int
    gemm_ms: float  # median, the challenge's GEMM alone
    total_ms: float  # median, generation + GEMM + digests + Merkle tree
    bare_gemm_ms: float  # median, a plain GEMM of the same n on the same device (float64 BLAS / _int_mm)
    phases_ms: dict[str, float]

    @property
    def tops(self) -> float:
        return 2 * self.n**3 / (self.gemm_ms / 1000) / 1e12 if self.gemm_ms > 0 else 0.0

    @property
    def bare_tops(self) -> float:
        return 2 * self.n**3 / (self.bare_gemm_ms / 1000) / 1e12 if self.bare_gemm_ms > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "gemmMs": self.gemm_ms,
            "totalMs": self.total_ms,
            "bareGemmMs": self.bare_gemm_ms,
            "tops": self.tops,
            "bareTops": self.bare_tops,
            "phasesMs": self.phases_ms,
        }


def default_sizes(max_size: int, memory_bytes: float | None = None) -> list[int]:
    """Powers of two from 256 up to ``max_size`` (and, on a GPU, half its memory)."""
    sizes = []
    n = _MIN_SIZE
    while n <= max_size:
        if memory_bytes is None or _BYTES_PER_ELEMENT * n * n <= _GPU_MEMORY_SHARE * memory_bytes:
            sizes.append(n)
        n *= 2
    return sizes or [min(max_size, _MIN_SIZE)]


def elementwise_passes(backend: MatmulBackend) -> str:
    """How a torch backend runs generation and digests after its first computation: "compiled" when
    torch.compile's passes matched eager mode bit for bit, else "eager"; "numpy" for the CPU path."""
    if not isinstance(backend, TorchBackend):
        return "numpy"
    # TorchBackend swaps its private pass functions for the compiled ones only after its exactness probe.
    return "eager" if backend._generate is generate_rows_torch else "compiled"


def bare_gemm_seconds(backend: MatmulBackend, n: int) -> float:
    """One plain GEMM of size n on the backend's device, synchronised, inputs ready beforehand."""
    if isinstance(backend, TorchBackend):
        import torch

        device = torch.device(backend.device)
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        torch._int_mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0
    rng = np.random.default_rng(n)
    a64 = rng.integers(-128, 128, (n, n)).astype(np.float64)
    b64 = rng.integers(-128, 128, (n, n)).astype(np.float64)
    t0 = time.perf_counter()
    _ = a64 @ b64
    return time.perf_counter() - t0


def bench_size(
    backend: MatmulBackend, n: int, repeats: int = 3, tick: Callable[[], Any] | None = None
) -> BenchRow:
    """Median of ``repeats`` challenge computations (with the Merkle tree) and bare GEMMs, interleaved."""
    gemm, total, bare = [], [], []
    phases: dict[str, list[float]] = {}
    bare_gemm_seconds(backend, n)  # warm-up: BLAS threads, CUDA context, cuBLASLt heuristics
    for i in range(repeats):
        seed = Seed(hashlib.sha256(f"bench-{n}-{i}".encode()).digest())
        t0 = time.perf_counter()
        result = backend.compute(n, MatrixKeys.bind(seed, BENCH_PROVER))
        t1 = time.perf_counter()
        MerkleTree.build(result.digests.tolist())
        t2 = time.perf_counter()
        gemm.append(result.gemm_seconds)
        total.append(t2 - t0)
        for name, seconds in {**result.phases, "merkle": t2 - t1}.items():
            phases.setdefault(name, []).append(seconds)
        bare.append(bare_gemm_seconds(backend, n))
        if tick is not None:
            tick()
    return BenchRow(
        n=n,
        gemm_ms=statistics.median(gemm) * 1000,
        total_ms=statistics.median(total) * 1000,
        bare_gemm_ms=statistics.median(bare) * 1000,
        phases_ms={k: statistics.median(v) * 1000 for k, v in phases.items()},
    )
