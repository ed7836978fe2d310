"""The explicit form of MATRIX_MULTIPLICATION: {"A": [[..]], "B": [[..]]} (or matrixA/matrixB), float64."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from function_node.errors import ChallengeError

__all__ = ["ExplicitResult", "is_explicit", "multiply_explicit", "parse_explicit", "parse_matrix"]


def is_explicit(payload: dict[str, Any]) -> bool:
    return any(key in payload for key in ("A", "B", "matrixA", "matrixB"))


def parse_matrix(value: Any, name: str, max_side: int) -> npt.NDArray[np.float64]:
    """A non-empty rectangular list of lists of numbers, each side at most ``max_side``."""
    if not isinstance(value, list) or not value:
        raise ChallengeError(f"matrix {name} must be a non-empty list of rows", code="invalid_matrix")
    if len(value) > max_side:
        raise ChallengeError(
            f"matrix {name} has {len(value)} rows; the limit is maxExplicitSize={max_side}",
            code="matrix_too_large",
        )
    width: int | None = None
    for i, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise ChallengeError(f"matrix {name} row {i} must be a non-empty list", code="invalid_matrix")
        if width is None:
            width = len(row)
            if width > max_side:
                raise ChallengeError(
                    f"matrix {name} has {width} columns; the limit is maxExplicitSize={max_side}",
                    code="matrix_too_large",
                )
        elif len(row) != width:
            raise ChallengeError(
                f"matrix {name} is not rectangular: row {i} has {len(row)} entries, row 0 has {width}",
                code="invalid_matrix",
            )
        for j, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, int | float):
                raise ChallengeError(
                    f"matrix {name}[{i}][{j}] is not a number: {cell!r}", code="invalid_matrix"
                )
    try:
        array = np.array(value, dtype=np.float64)
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
    c: npt.NDArray[np.float64]
    gemm_seconds: float
    flops: int


def multiply_explicit(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> ExplicitResult:
    """C = A·B in float64 (blocking: call off the event loop)."""
    t0 = time.perf_counter()
    c = a @ b
    seconds = time.perf_counter() - t0
    return ExplicitResult(c=c, gemm_seconds=seconds, flops=2 * a.shape[0] * a.shape[1] * b.shape[1])
