"""The doctor's framework: checks are async functions of a context that return findings.

A check never raises for the condition it examines: it turns it into a FAIL or WARN finding with a hint
that says what to run or edit. An exception that escapes a check is itself reported as a FAIL of that
check (with its one-line message), so one broken check cannot hide the others.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from function_node.config.backends import BackendConfig
    from function_node.config.settings import Settings

__all__ = ["Check", "DoctorContext", "Finding", "Status", "exit_code", "run_checks"]


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    message: str
    hint: str = ""

    @classmethod
    def ok(cls, check: str, message: str) -> Finding:
        return cls(check, Status.OK, message)

    @classmethod
    def warn(cls, check: str, message: str, hint: str) -> Finding:
        return cls(check, Status.WARN, message, hint)

    @classmethod
    def fail(cls, check: str, message: str, hint: str) -> Finding:
        return cls(check, Status.FAIL, message, hint)


@dataclass(slots=True)
class DoctorContext:
    """What the checks share. ``settings``/``backends`` are None when their file did not load; checks
    that need them then report that they were skipped rather than failing twice for one cause."""

    home: Path
    settings: Settings | None = None
    backends: BackendConfig | None = None
    address: str = ""  # the node's address, from the key file, once known
    timeout: float = 5.0
    matrix_size: int = 256
    notes: dict[str, object] = field(default_factory=dict)


Check = Callable[[DoctorContext], Awaitable[Sequence[Finding]]]


async def run_checks(ctx: DoctorContext, checks: Sequence[tuple[str, Check]]) -> list[Finding]:
    """Run the checks in order (later ones may use what earlier ones put on the context)."""
    findings: list[Finding] = []
    for name, check in checks:
        try:
            findings.extend(await check(ctx))
        except Exception as exc:  # a bug or an unforeseen environment: report it, keep going
            findings.append(
                Finding.fail(
                    name, f"the check itself failed: {type(exc).__name__}: {exc}", "run with --debug"
                )
            )
    return findings


def exit_code(findings: Sequence[Finding]) -> int:
    """1 if any finding failed, else 0 (warnings do not fail the doctor)."""
    return 1 if any(f.status is Status.FAIL for f in findings) else 0
