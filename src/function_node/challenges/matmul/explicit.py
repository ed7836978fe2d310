"""The explicit form of MATRIX_MULTIPLICATION: {"A": [[..]], "B": [[..]]} (or matrixA/matrixB), float64.

Everything here is blocking and runs on the matrix worker thread (:func:`compute_explicit`), never on
the event loop: at 1024² the old on-loop parse took ~0.7 s. The work is cut into row-sized steps
(type check, conversion and serialisation one row at a time), so the thread gives the GIL back to the
event loop between rows instead of holding it for one long C call. A product that overflows float64
(an infinite or NaN entry, which JSON cannot carry) is refused with 400 ``non_finite_result``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from function_node.errors import ChallengeError

__all__ = ["ExplicitResult", "compute_explicit", "is_explicit", "parse_explicit", "parse_matrix"]

# Exact types, as a JSON parser produces them (bool is an int subclass and is refused).
_NUMBER_TYPES: Final = frozenset({int, float})


def is_explicit(payload: dict[str, Any]) -> bool:
    return any(key in payload for key in ("A", "B", "matrixA", "matrixB"))


def _not_a_number(row: list[Any], name: str, i: int) -> ChallengeError:
    j, cell = next((j, c) for j, c in enumerate(row) if type(c) not in _NUMBER_TYPES)
    return ChallengeError(f"matrix {name}[{i}][{j}] is not a number: {cell!r}", code="invalid_matrix")


def parse_matrix(value: Any, name: str, max_side: int) -> npt.NDArray[np.float64]:
    """A non-empty rectangular list of lists of numbers, each side at most ``max_side`` (blocking)."""
    if not isinstance(value, list) or not value:
        raise ChallengeError(f"matrix {name} must be a non-empty list of rows", code="invalid_matrix")
    if len(value) > max_side:
        raise ChallengeError(
            f"matrix {name} has {len(value)} rows; the limit is maxExplicitSize={max_side}",
            code="matrix_too_large",
        )
    first = value[0]
    width = len(first) if isinstance(first, list) else 0
    if width > max_side:
        raise ChallengeError(
            f"matrix {name} has {width} columns; the limit is maxExplicitSize={max_side}",
            code="matrix_too_large",
        )
    array = np.empty((len(value), max(width, 1)), dtype=np.float64)
    for i, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise ChallengeError(f"matrix {name} row {i} must be a non-empty list", code="invalid_matrix")
        if len(row) != width:
            raise ChallengeError(
                f"matrix {name} is not rectangular: row {i} has {len(row)} entries, row 0 has {width}",
                code="invalid_matrix",
            )
        if not set(map(type, row)) <= _NUMBER_TYPES:
            raise _not_a_number(row, name, i)
        try:
            array[i] = row
        except OverflowError:
            raise ChallengeError(
                f"matrix {name} holds a number too large for float64", code="invalid_matrix"
            ) from None
    if not np.isfinite(array).all():
        raise ChallengeError(f"matrix {name} holds a non-finite number", code="invalid_matrix")
    return array


def parse_explicit(
    payload: dict[str, Any], max_side: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    a_raw = payload.get("A", payload.get("matrixA"))
    b_raw = payload.get("B", payload.get("matrixB"))
    if a_raw is None or b_raw is None:
        raise ChallengeError(
            'the explicit form needs both "A" and "B" (or "matrixA" and "matrixB")', code="invalid_matrix"
        )
    a = parse_matrix(a_raw, "A", max_side)
    b = parse_matrix(b_raw, "B", max_side)
    if a.shape[1] != b.shape[0]:
        raise ChallengeError(
            f"inner dimensions differ: A is {a.shape[0]}×{a.shape[1]}, B is {b.shape[0]}×{b.shape[1]}",
            code="dimension_mismatch",
        )
    return a, b


@dataclass(frozen=True, slots=True)
class ExplicitResult:
    shape: tuple[int, int, int]  # m, k, p: A is m×k, B is k×p
    c_json: orjson.Fragment  # C as JSON, serialised on the worker thread
    first: float  # C[0][0]
    gemm_seconds: float
    flops: int


def compute_explicit(payload: dict[str, Any], max_side: int) -> ExplicitResult:
    """Parse, validate and multiply the explicit form, and serialise C (blocking: run off the loop)."""
    a, b = parse_explicit(payload, max_side)
    t0 = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below, with a sentence
        c = a @ b  # BLAS releases the GIL
    seconds = time.perf_counter() - t0
    if not np.isfinite(c).all():
        raise ChallengeError(
            "the product A·B overflows float64 (an entry is infinite or not a number); send smaller values",
            code="non_finite_result",
        )
    rows = [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in c]
    m, k = a.shape
    return ExplicitResult(
        shape=(m, k, b.shape[1]),
        c_json=orjson.Fragment(b"[" + b",".join(rows) + b"]"),
        first=float(c[0, 0]),
        gemm_seconds=seconds,
        flops=2 * m * k * b.shape[1],
    )
