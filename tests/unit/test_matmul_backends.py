"""The CPU (numpy) and torch paths agree bit for bit; the CUDA checks (marked gpu) run only where a GPU
exists: generation, GEMM, digests and roots against the CPU for n = 64 … 4096, bound to one fixed prover,
and SPEC §7.2's published vectors through TorchBackend("cuda").

Only the tests that compare against torch need torch: the numpy-only checks run without it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pytest

from function_node.challenges.matmul.commitment import MerkleTree, row_digests_np
from function_node.challenges.matmul.compute import (
    MatmulResult,
    NumpyBackend,
    TorchBackend,
    sample_positions,
)
from function_node.challenges.matmul.generate import (
    MatrixKeys,
    Seed,
    generate_matrix_np,
    generate_rows_np,
    generate_rows_torch,
)


@pytest.fixture
def torch() -> ModuleType:
    """torch, or a skip for the test that asked for it (compute.py imports torch lazily)."""
    module: ModuleType = pytest.importorskip("torch")
    return module


# Every backend computes for one fixed prover (the proof is bound to the node's address, SPEC §7.2).
PROVER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _seed(n: int) -> MatrixKeys:
    return MatrixKeys.bind(Seed(hashlib.sha256(f"backends-{n}".encode()).digest()), PROVER)


@pytest.mark.parametrize("n", [64, 256, 1024])
def test_numpy_and_torch_cpu_are_bit_identical(torch: ModuleType, n: int) -> None:
    seed = _seed(n)
    with ThreadPoolExecutor(2) as pool:
        cpu = NumpyBackend(executor=pool).compute(n, seed)
    tch = TorchBackend("cpu").compute(n, seed)
    assert cpu.digests.dtype == tch.digests.dtype == np.uint64
    assert np.array_equal(cpu.digests, tch.digests)
    assert cpu.samples == tch.samples
    a_np = generate_matrix_np(n, seed.a_keys)
    a_t = generate_rows_torch(n, seed.a_keys, 0, n, torch.device("cpu")).numpy()
    assert np.array_equal(a_np, a_t)


@pytest.mark.parametrize("n", [1, 3, 17, 100])
@pytest.mark.usefixtures("torch")
def test_torch_pads_sizes_that_int_mm_cannot_take(n: int) -> None:
    # torch._int_mm wants dims that are multiples of 8 and more than 16 rows; padding must not leak.
    seed = _seed(n)
    assert np.array_equal(
        NumpyBackend().compute(n, seed).digests, TorchBackend("cpu").compute(n, seed).digests
    )


def test_samples_are_the_exact_cells_of_c() -> None:
    n = 9
    seed = _seed(n)
    a = generate_matrix_np(n, seed.a_keys).astype(np.int64)
    b = generate_matrix_np(n, seed.b_keys).astype(np.int64)
    c = a @ b
    result = NumpyBackend().compute(n, seed)
    assert result.samples == [{"row": i, "col": j, "value": int(c[i, j])} for i, j in sample_positions(n)]
    assert np.array_equal(result.digests, row_digests_np(c, *seed.digest_keys))


def test_generating_a_subset_of_rows_matches_the_whole_matrix() -> None:
    seed = _seed(300)
    whole = generate_matrix_np(300, seed.b_keys, np.float64)
    rows = [299, 0, 150]
    assert np.array_equal(generate_rows_np(300, seed.b_keys, rows, np.float64), whole[rows])


def test_float64_gemm_is_exact_at_the_extremes() -> None:
    # The worst case for the CPU path: every product is (-128)·(-128) and n = maxCpuSize's order.
    n = 4096
    a = np.full((1, n), -128.0)
    b = np.full((n, 1), -128.0)
    assert int((a @ b)[0, 0]) == n * 128 * 128


# -- the CUDA path (pytest -m gpu; bench/gpu_check.sh runs these on a GPU machine) -------------------------

# bench/gpu_check.sh's rehearsal without a GPU sets this: the CUDA tests then run their exact assertions
# on torch's CPU device, which proves the tests and the script's plumbing, never the GPU.
ON_CPU_SWITCH: Final = "FXN_GPU_TESTS_ON_CPU"
VECTORS: Final[list[dict[str, Any]]] = json.loads(
    (Path(__file__).parent.parent / "data" / "matmul-v2.json").read_text()
)["cases"]


@pytest.fixture
def gpu(torch: ModuleType) -> str:
    """The device the CUDA tests run on: "cuda", or "cpu" under the rehearsal switch; else a skip."""
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get(ON_CPU_SWITCH) == "1":
        return "cpu"
    pytest.skip("needs a CUDA device")


@dataclass(frozen=True, slots=True)
class CpuReference:
    """Everything the numpy path computes for one n: the operands, C exactly, digests and root."""

    a: npt.NDArray[np.int8]
    b: npt.NDArray[np.int8]
    c: npt.NDArray[np.int64]
    digests: npt.NDArray[np.uint64]
    samples: list[dict[str, int]]
    root: bytes


@functools.lru_cache(maxsize=1)  # each n is compared twice (compiled and eager passes)
def cpu_reference(n: int) -> CpuReference:
    keys = _seed(n)
    a = generate_matrix_np(n, keys.a_keys)
    b = generate_matrix_np(n, keys.b_keys)
    c = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)  # exact: |C| <= n·128² < 2^53
    with ThreadPoolExecutor(2) as pool:
        result = NumpyBackend(executor=pool).compute(n, keys)
    root = MerkleTree.build(result.digests.tolist()).root
    return CpuReference(a, b, c, result.digests, result.samples, root)


def device_product(torch: ModuleType, n: int, keys: MatrixKeys, device: str) -> tuple[Any, Any, Any]:
    """A, B generated on ``device`` and C = torch._int_mm(A, B) there, each brought back as numpy.

    Zero padding to _int_mm's shape rules (multiples of 8, more than 16 rows) leaves C's n×n block as is."""
    dev = torch.device(device)
    p = max(32, -(-n // 8) * 8)
    a = torch.zeros((p, p), dtype=torch.int8, device=dev)
    b = torch.zeros((p, p), dtype=torch.int8, device=dev)
    a[:n, :n] = generate_rows_torch(n, keys.a_keys, 0, n, dev)
    b[:n, :n] = generate_rows_torch(n, keys.b_keys, 0, n, dev)
    c = torch._int_mm(a, b)
    return a[:n, :n].cpu().numpy(), b[:n, :n].cpu().numpy(), c[:n, :n].cpu().numpy()


def compute_as_deployed(backend: TorchBackend, n: int, keys: MatrixKeys) -> MatmulResult:
    """``backend.compute`` with warnings as they are outside pytest: under ``filterwarnings = error`` any
    warning torch.compile emits would make TorchBackend keep its eager passes, and the compiled ones would
    go untested. pytest still lists the warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        return backend.compute(n, keys)


@pytest.mark.gpu
@pytest.mark.parametrize("n", [64, 256, 1024, 4096])
def test_cuda_generation_and_gemm_match_the_cpu_exactly(torch: ModuleType, gpu: str, n: int) -> None:
    ref = cpu_reference(n)
    a, b, c = device_product(torch, n, _seed(n), gpu)
    assert a.dtype == b.dtype == np.int8 and c.dtype == np.int32
    assert np.array_equal(a, ref.a)
    assert np.array_equal(b, ref.b)
    assert np.array_equal(c.astype(np.int64), ref.c)


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-passes", "eager-passes"])
@pytest.mark.parametrize("n", [64, 256, 1024, 4096])
def test_cuda_digests_and_root_match_the_cpu_exactly(gpu: str, n: int, compiled: bool) -> None:
    # compiled=True lets TorchBackend adopt torch.compile's passes (CUDA only) once they match eager mode.
    ref = cpu_reference(n)
    result = compute_as_deployed(TorchBackend(gpu, compile=compiled), n, _seed(n))
    assert result.digests.dtype == np.uint64
    assert np.array_equal(result.digests, ref.digests)
    assert result.samples == ref.samples
    assert MerkleTree.build(result.digests.tolist()).root == ref.root


@pytest.mark.gpu
@pytest.mark.parametrize("case", VECTORS, ids=lambda case: f"n{case['n']}")
def test_cuda_backend_matches_the_published_vector(torch: ModuleType, gpu: str, case: dict[str, Any]) -> None:
    n = case["n"]
    keys = MatrixKeys.bind(Seed(bytes.fromhex(case["seed"][2:])), case["node_address"])
    a, b, c = device_product(torch, n, keys, gpu)
    assert (a[0, :8].tolist(), b[0, :8].tolist(), c[0, :8].tolist()) == (
        case["A_row0"],
        case["B_row0"],
        case["C_row0"],
    )
    result = compute_as_deployed(TorchBackend(gpu), n, keys)
    assert [str(d) for d in result.digests.tolist()] == case["row_digests"]
    tree = MerkleTree.build(result.digests.tolist())
    assert "0x" + tree.root.hex() == case["merkleRoot"]
    proof = case["proof_row_last"]
    assert ["0x" + s.hex() for s in tree.siblings(proof["row"])] == proof["siblings"]
