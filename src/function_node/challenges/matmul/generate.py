"""The seeded matrix generator of SPEC §7.2, in numpy (CPU) and torch (any device).

Definitions (unsigned 32-bit words, wrapping)::

    fmix32(h): h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35; h ^= h >> 16
    element (r, c) with keys (k0, k1): idx = r*n + c; h = fmix32(fmix32(idx ^ k0) ^ k1)
    value = int8((h >> 24) - 128)

The keys come from :class:`MatrixKeys`, bound to the prover's address; the seed alone fixes nothing.
The numpy path works in place on uint32 blocks small enough to stay in cache, one scratch buffer per
block, so a matrix costs about seventeen vector passes and no large temporaries. The torch path works on
int32 tensors (wrapping two's-complement multiply, logical shifts by masking) so the same code runs on
CUDA and on torch's CPU device; tests hold both paths bit-identical.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from function_node.signing import normalize_address

if TYPE_CHECKING:
    import torch

__all__ = [
    "BLOCK_ELEMENTS",
    "FMIX_C1",
    "FMIX_C2",
    "KEY_DOMAIN",
    "MASK32",
    "MatrixKeys",
    "Seed",
    "fmix32_np",
    "fmix32_torch",
    "generate_matrix_np",
    "generate_rows_np",
    "generate_rows_torch",
    "parse_seed",
    "row_blocks",
    "signed32",
]

FMIX_C1: Final = 0x85EBCA6B
FMIX_C2: Final = 0xC2B2AE35
MASK32: Final = 0xFFFFFFFF
# 64 Ki words (256 KiB) per block: two such buffers fit in a core's L2, so each of the ~17 passes over
# a block reads from cache instead of memory.
BLOCK_ELEMENTS: Final = 1 << 16
KEY_DOMAIN: Final = b"fxn-matmul-v2"
_SEED_RE: Final = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class Seed:
    """A challenge's 32-byte seed, as the scheduler sent it (and as the answer returns it)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError("a seed is 32 bytes")

    @property
    def hex(self) -> str:
        return "0x" + self.raw.hex()


@dataclass(frozen=True, slots=True)
class MatrixKeys:
    """The key material ``K`` of one prover's challenge, split into its eight big-endian words w0..w7.

    ``K = sha256(b"fxn-matmul-v2" || seed || prover address as 20 bytes)`` (SPEC §7.2): the matrices
    depend on who computes them, so one node's answer is worthless as another's.
    """

    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != 32:
            raise ValueError("key material is 32 bytes")

    @classmethod
    def bind(cls, seed: Seed, prover: str) -> MatrixKeys:
        """The keys of ``seed`` for the node whose address is ``prover`` (any case, 0x-prefixed)."""
        address = bytes.fromhex(normalize_address(prover)[2:])
        return cls(hashlib.sha256(KEY_DOMAIN + seed.raw + address).digest())

    @property
    def words(self) -> tuple[int, ...]:
        return tuple(int.from_bytes(self.material[i : i + 4], "big") for i in range(0, 32, 4))

    @property
    def a_keys(self) -> tuple[int, int]:
        w = self.words
        return w[0], w[1]

    @property
    def b_keys(self) -> tuple[int, int]:
        w = self.words
        return w[2], w[3]

    @property
    def digest_keys(self) -> tuple[int, int]:
        w = self.words
        return w[4], w[5]


def parse_seed(text: object) -> Seed:
    """``0x`` + 64 hex digits -> Seed; ValueError with the reason otherwise."""
    if not isinstance(text, str) or not _SEED_RE.match(text):
        raise ValueError('seed must be "0x" followed by 64 hex digits (32 bytes)')
    return Seed(bytes.fromhex(text[2:]))


def fmix32_np(h: npt.NDArray[np.uint32], tmp: npt.NDArray[np.uint32]) -> None:
    """MurmurHash3's 32-bit finaliser, in place on ``h``; ``tmp`` is scratch of the same shape."""
    np.right_shift(h, 16, out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    np.multiply(h, np.uint32(FMIX_C1), out=h)
    np.right_shift(h, 13, out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    np.multiply(h, np.uint32(FMIX_C2), out=h)
    np.right_shift(h, 16, out=tmp)
    np.bitwise_xor(h, tmp, out=h)


def row_blocks(rows: int, n: int, block_elements: int = BLOCK_ELEMENTS) -> Iterator[tuple[int, int]]:
    """[start, stop) row ranges of about ``block_elements`` elements each (at least one row)."""
    step = max(1, block_elements // max(n, 1))
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def _fill_block(
    out: npt.NDArray[Any],
    n: int,
    span: tuple[int, int],
    keys: tuple[int, int],
    row_ids: npt.NDArray[np.int64],
) -> None:
    """Generate rows ``row_ids[r0:r1]`` into ``out[r0:r1]`` (any numeric dtype)."""
    r0, r1 = span
    k0, k1 = keys
    rows = row_ids[r0:r1]
    h = np.empty((r1 - r0, n), dtype=np.uint32)
    tmp = np.empty_like(h)
    # idx = r*n + c (mod 2^32), built as a row base plus the column range, without an int64 temporary.
    base = ((rows * n) & MASK32).astype(np.uint32)
    np.add(base[:, None], np.arange(n, dtype=np.uint32)[None, :], out=h)
    np.bitwise_xor(h, np.uint32(k0), out=h)
    fmix32_np(h, tmp)
    np.bitwise_xor(h, np.uint32(k1), out=h)
    fmix32_np(h, tmp)
    # int8((h >> 24) - 128) is the top byte with its high bit flipped, read as signed. On a little-endian
    # machine the top byte is byte 3 of each word, so no shift pass is needed.
    top = h.view(np.uint8)[:, 3::4] if np.little_endian else (h >> 24).astype(np.uint8)
    out[r0:r1] = (top ^ np.uint8(0x80)).view(np.int8)


def generate_rows_np(
    n: int,
    keys: tuple[int, int],
    rows: npt.ArrayLike,
    dtype: npt.DTypeLike = np.int8,
    executor: Executor | None = None,
) -> npt.NDArray[Any]:
    """Rows ``rows`` (any order) of the n×n matrix with ``keys``, as ``dtype`` (int8, float32, float64).

    With an executor the blocks run in parallel: numpy releases the GIL inside each vector pass.
    """
    row_ids = np.asarray(rows, dtype=np.int64).reshape(-1)
    out = np.empty((row_ids.size, n), dtype=dtype)
    blocks = list(row_blocks(row_ids.size, n))
    if executor is None or len(blocks) == 1:
        for r0, r1 in blocks:
            _fill_block(out, n, (r0, r1), keys, row_ids)
    else:
        for future in [executor.submit(_fill_block, out, n, (r0, r1), keys, row_ids) for r0, r1 in blocks]:
            future.result()
    return out


def generate_matrix_np(
    n: int, keys: tuple[int, int], dtype: npt.DTypeLike = np.int8, executor: Executor | None = None
) -> npt.NDArray[Any]:
    """The whole n×n matrix for ``keys``."""
    return generate_rows_np(n, keys, np.arange(n, dtype=np.int64), dtype=dtype, executor=executor)


def signed32(value: int) -> int:
    """A uint32 constant as the int32 with the same bits (torch has no full uint32 arithmetic)."""
    value &= MASK32
    return value - (1 << 32) if value >= 1 << 31 else value


def _lsr(h: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int32 words: arithmetic shift, then clear the sign-extended bits."""
    return (h >> bits) & ((1 << (32 - bits)) - 1)


def fmix32_torch(h: torch.Tensor) -> torch.Tensor:
    """fmix32 on int32 tensors holding uint32 bit patterns (multiplication wraps mod 2^32), in place:
    ``h`` is overwritten and returned, so a block costs one scratch tensor instead of one per step."""
    h ^= _lsr(h, 16)
    h *= signed32(FMIX_C1)
    h ^= _lsr(h, 13)
    h *= signed32(FMIX_C2)
    h ^= _lsr(h, 16)
    return h


def generate_rows_torch(
    n: int, keys: tuple[int, int], r0: int, r1: int, device: torch.device
) -> torch.Tensor:
    """Rows [r0, r1) of the n×n matrix for ``keys`` as an int8 tensor on ``device``."""
    import torch

    k0, k1 = (signed32(k) for k in keys)
    # idx = r*n + c (mod 2^32) as the int32 with the same bits: int64 arithmetic, then wrap.
    rows = torch.arange(r0, r1, dtype=torch.int64, device=device) * n
    cols = torch.arange(n, dtype=torch.int64, device=device)
    idx = (rows[:, None] + cols[None, :]) & MASK32
    h = torch.where(idx >= 1 << 31, idx - (1 << 32), idx).to(torch.int32)
    del idx
    h ^= k0
    fmix32_torch(h)
    h ^= k1
    fmix32_torch(h)
    h >>= 24
    h &= 0xFF
    h -= 128
    return h.to(torch.int8)
