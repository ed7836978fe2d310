"""``fxn scheduler status``: one row per node from the store, its latest round at a glance."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.table import Table

from function_node.scheduler.checks import CHECK_INFERENCE, CHECK_MATMUL, CHECK_REACHABLE, CHECKS
from function_node.scheduler.store import NodeSummary

__all__ = ["status_table"]


def _ago(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    seconds = max(0.0, now - at)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _number(value: object, fmt: str) -> str:
    return format(float(value), fmt) if isinstance(value, int | float) else "-"


def status_table(summaries: Sequence[NodeSummary], now: float | None = None) -> Table:
    """The table of nodes: address, last seen, RTT, measured TOPS, inference, verdicts, failures."""
    now = time.time() if now is None else now
    table = Table(title="Function Network nodes (reference scheduler)", header_style="bold")
    for column in (
        "node",
        "address",
        "last seen",
        "RTT ms",
        "TOPS",
        "TTFT ms",
        "tok/s",
        "verdicts",
        "failures",
    ):
        table.add_column(column, no_wrap=column != "failures")
    for node in summaries:
        reach, matmul, infer = (node.result(c) for c in (CHECK_REACHABLE, CHECK_MATMUL, CHECK_INFERENCE))
        verdicts = " ".join(
            f"{c}:{'ok' if r.ok else 'FAIL'}" for c in CHECKS if (r := node.result(c)) is not None
        )
        failures = ", ".join(f"{r.check}={r.reason}" for r in node.results if not r.ok) or "-"
        table.add_row(
            node.node_url,
            node.node_address or "-",
            _ago(node.last_seen, now),
            _number(reach.rtt_ms if reach else None, ".1f"),
            _number(matmul.values.get("tops") if matmul and matmul.ok else None, ".4f"),
            _number(infer.values.get("ttft_ms") if infer and infer.ok else None, ".0f"),
            _number(infer.values.get("tokens_per_s") if infer and infer.ok else None, ".1f"),
            f"[green]{verdicts}[/]" if node.passed else f"[red]{verdicts}[/]",
            f"{failures} ({node.rounds_failed}/{node.rounds_total} rounds failed)",
        )
    return table
