"""The devnet's summary table: where everything listens and what passed."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from function_node.devnet.scenario import Row

__all__ = ["all_passed", "summary_table"]


def all_passed(rows: Sequence[Row]) -> bool:
    """Every row that is a check (``ok`` not None) passed, and there is at least one."""
    checks = [r for r in rows if r.ok is not None]
    return bool(checks) and all(r.ok for r in checks)


def summary_table(rows: Sequence[Row], title: str = "Function Network devnet") -> Table:
    table = Table(title=title, header_style="bold")
    table.add_column("component")
    table.add_column("where", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for row in rows:
        status = "[dim]info[/]" if row.ok is None else ("[green]passed[/]" if row.ok else "[red]FAILED[/]")
        table.add_row(escape(row.component), escape(row.where), status, escape(row.detail))
    return table
