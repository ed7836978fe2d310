"""The CPU (numpy) and torch paths agree bit for bit; the CUDA check runs only where a GPU exists.

Only the tests that compare against torch need torch: the numpy-only checks run without it.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np
import pytest

from function_node.challenges.matmul.commitment import row_digests_np
from function_node.challenges.matmul.compute import NumpyBackend, TorchBackend, sample_positions
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


@pytest.mark.gpu
@pytest.mark.parametrize("n", [64, 256, 1024, 4096])
def test_cuda_and_cpu_are_bit_identical(torch: ModuleType, n: int) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    seed = _seed(n)
    with ThreadPoolExecutor(2) as pool:
        cpu = NumpyBackend(executor=pool).compute(n, seed)
    gpu = TorchBackend("cuda").compute(n, seed)
    assert np.array_equal(cpu.digests, gpu.digests)
    assert cpu.samples == gpu.samples
