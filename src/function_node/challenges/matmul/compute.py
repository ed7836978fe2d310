"""Matrix backends: generate A and B from the prover-bound keys, C = A·B exactly, digest every row of C.

* :class:`NumpyBackend` — the CPU path: int8 values generated straight into float64, one BLAS GEMM
  (exact: |C| <= n·128² < 2^53), digests in blocks on a small thread pool.
* :class:`TorchBackend` — the GPU path: generation, ``torch._int_mm`` (int8 -> int32, tensor cores) and
  digests stay on the device; only n digests come back. It runs unchanged on torch's CPU device,
  which is how it is tested where no GPU exists.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from function_node.challenges.matmul.commitment import row_digests_np
from function_node.challenges.matmul.generate import (
    MASK32,
    MatrixKeys,
    fmix32_torch,
    generate_matrix_np,
    generate_rows_torch,
    signed32,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "DeviceInfo",
    "MatmulBackend",
    "MatmulResult",
    "NumpyBackend",
    "TorchBackend",
    "cpu_device_info",
    "cuda_available",
    "sample_positions",
]

_GIB: Final = float(1 << 30)
_TORCH_BLOCK_ELEMENTS: Final = 1 << 24  # per generation/digest block on the device (64 MiB of int32)
_INT_MM_MULTIPLE: Final = 8  # cuBLASLt int8 GEMM: inner and outer dims multiples of 8 ...
_INT_MM_MIN_ROWS: Final = 32  # ... and more than 16 rows


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str
    compute_capability: str
    memory_gb: float

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "computeCapability": self.compute_capability,
            "memoryGB": round(self.memory_gb, 2),
        }


@dataclass(frozen=True, slots=True)
class MatmulResult:
    """The outcome of one computation; ``phases`` holds seconds per phase (generate, gemm, digest)."""

    digests: npt.NDArray[np.uint64]
    samples: list[dict[str, int]]
    gemm_seconds: float
    total_seconds: float
    phases: dict[str, float] = field(default_factory=dict)


class MatmulBackend(Protocol):
    """One way of computing the challenge. ``compute`` is blocking: call it off the event loop."""

    name: str  # the answer's "backend": "cpu", "cuda", ...
    device: str  # the answer's "device": "cpu", "cuda:0", ...

    def device_info(self) -> DeviceInfo: ...

    def compute(self, n: int, keys: MatrixKeys) -> MatmulResult: ...


def sample_positions(n: int) -> list[tuple[int, int]]:
    """Fixed cells of C returned as ``resultSamples``: the corners and the centre."""
    cells = [(0, 0), (0, n - 1), (n - 1, 0), (n - 1, n - 1), (n // 2, n // 2)]
    return list(dict.fromkeys(cells))


def cpu_device_info() -> DeviceInfo:
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / _GIB
    except (ValueError, OSError, AttributeError):
        memory = 0.0
    return DeviceInfo(name=f"{name} ({os.cpu_count() or 1} cores)", compute_capability="", memory_gb=memory)


def _nvml_sees_a_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: pynvml raises its own NVMLError family
        return False
    try:
        return int(pynvml.nvmlDeviceGetCount()) > 0
    except Exception:  # an NVMLError after init (driver mismatch, lost GPU): no usable GPU
        return False
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device. NVML is asked first, so a machine without an
    NVIDIA driver never pays for importing torch (seconds, hundreds of MB); call off the event loop."""
    if importlib.util.find_spec("torch") is None or not _nvml_sees_a_gpu():
        return False
    import torch

    return bool(torch.cuda.is_available())


@dataclass(slots=True)
class NumpyBackend:
    """CPU: float64 BLAS GEMM, generation and digests vectorised in cache-sized blocks."""

    executor: Executor | None = None
    name: str = "cpu"
    device: str = "cpu"

    def device_info(self) -> DeviceInfo:
        return cpu_device_info()

    def compute(self, n: int, keys: MatrixKeys) -> MatmulResult:
        t0 = time.perf_counter()
        a = generate_matrix_np(n, keys.a_keys, np.float64, self.executor)
        b = generate_matrix_np(n, keys.b_keys, np.float64, self.executor)
        t1 = time.perf_counter()
        c = a @ b
        t2 = time.perf_counter()
        del a, b
        digests = row_digests_np(c, *keys.digest_keys, executor=self.executor)
        samples = [{"row": i, "col": j, "value": int(c[i, j])} for i, j in sample_positions(n)]
        t3 = time.perf_counter()
        return MatmulResult(
            digests=digests,
            samples=samples,
            gemm_seconds=t2 - t1,
            total_seconds=t3 - t0,
            phases={"generate": t1 - t0, "gemm": t2 - t1, "digest": t3 - t2},
        )


def _digest_rows_torch(c: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """d_i for int32 rows ``c`` (int64 result; sums of n < 2^31 uint32 terms cannot overflow)."""
    words = fmix32_torch(c ^ keys[None, :])  # c ^ keys is a fresh tensor: c itself is not touched
    return (words.long() & MASK32).sum(dim=1)


@dataclass(slots=True)
class TorchBackend:
    """Generation, exact int8 GEMM and digests on a torch device (CUDA, or CPU for tests)."""

    device_name: str = "cuda"
    compile: bool = True  # try torch.compile for the elementwise passes on CUDA; eager on failure
    name: str = field(init=False)
    device: str = field(init=False)
    _generate: Any = field(init=False, default=None, repr=False)
    _digest: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.device = self.device_name
        self.name = "cuda" if self.device_name.startswith("cuda") else f"torch-{self.device_name}"
        self._generate = generate_rows_torch
        self._digest = _digest_rows_torch

    def _torch_device(self) -> torch.device:
        import torch

        return torch.device(self.device_name)

    def device_info(self) -> DeviceInfo:
        import torch

        dev = self._torch_device()
        if dev.type != "cuda":
            return cpu_device_info()
        props = torch.cuda.get_device_properties(dev)
        return DeviceInfo(
            name=str(props.name),
            compute_capability=f"{props.major}.{props.minor}",
            memory_gb=float(props.total_memory) / _GIB,
        )

    def _sync(self) -> None:
        import torch

        if self._torch_device().type == "cuda":
            torch.cuda.synchronize(self._torch_device())

    def _compiled(self) -> None:
        """Swap in torch.compile'd passes once; any failure (no triton, old torch) keeps eager mode."""
        import torch

        if not self.compile or self._torch_device().type != "cuda" or not hasattr(torch, "compile"):
            return
        self.compile = False
        dev = self._torch_device()
        try:
            gen = torch.compile(generate_rows_torch, dynamic=True)
            dig = torch.compile(_digest_rows_torch, dynamic=True)
            # A compiler that treated int32 overflow as undefined could change the bits: the compiled
            # passes are used only if they match eager mode exactly on a probe with wrapping values.
            keys = (0x9E3779B9, 0xDEADBEEF)
            fast = gen(72, keys, 3, 40, dev)
            slow = generate_rows_torch(72, keys, 3, 40, dev)
            words = slow.to(torch.int32) * 40503
            same = torch.equal(fast, slow) and torch.equal(
                dig(words, words[0]), _digest_rows_torch(words, words[0])
            )
        except Exception:  # torch.compile raises many backend-specific types; eager is always correct
            return
        if same:
            self._generate, self._digest = gen, dig

    def compute(self, n: int, keys: MatrixKeys) -> MatmulResult:
        import torch

        self._compiled()
        dev = self._torch_device()
        # Zero padding leaves C's top-left n×n block unchanged and satisfies _int_mm's shape rules.
        p = max(_INT_MM_MIN_ROWS, -(-n // _INT_MM_MULTIPLE) * _INT_MM_MULTIPLE)
        self._sync()
        t0 = time.perf_counter()
        a = torch.zeros((p, p), dtype=torch.int8, device=dev)
        b = torch.zeros((p, p), dtype=torch.int8, device=dev)
        step = max(1, _TORCH_BLOCK_ELEMENTS // n)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            a[r0:r1, :n] = self._generate(n, keys.a_keys, r0, r1, dev)
            b[r0:r1, :n] = self._generate(n, keys.b_keys, r0, r1, dev)
        self._sync()
        t1 = time.perf_counter()
        c = torch._int_mm(a, b)
        self._sync()
        t2 = time.perf_counter()
        del a, b
        w4, w5 = keys.digest_keys
        cols = torch.arange(n, dtype=torch.int64, device=dev)
        column_keys = fmix32_torch(
            torch.where(cols >= 1 << 31, cols - (1 << 32), cols).to(torch.int32) ^ signed32(w4)
        )
        column_keys = column_keys ^ signed32(w5)
        digests = torch.empty(n, dtype=torch.int64, device=dev)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            digests[r0:r1] = self._digest(c[r0:r1, :n], column_keys)
        samples = [{"row": i, "col": j, "value": int(c[i, j].item())} for i, j in sample_positions(n)]
        out = digests.cpu().numpy().astype(np.uint64)
        t3 = time.perf_counter()
        return MatmulResult(
            digests=out,
            samples=samples,
            gemm_seconds=t2 - t1,
            total_seconds=t3 - t0,
            phases={"generate": t1 - t0, "gemm": t2 - t1, "digest": t3 - t2},
        )
