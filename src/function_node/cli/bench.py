"""``fxn bench matmul``: run the matrix challenge locally at several sizes; a progress bar, then a table
of n, GEMM ms, total ms, TOPS and the bare GEMM of the same size for comparison."""

from __future__ import annotations

from typing import Annotated, Final

import typer

from function_node.cli._common import EXIT_USAGE, fail, state

__all__ = ["register"]

_BACKENDS: Final = ("auto", "cpu", "gpu")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Local benchmarks.", no_args_is_help=True)
    group.command("matmul", help="Time the matrix challenge at several sizes against a bare GEMM.")(matmul)
    app.add_typer(group, name="bench")


def matmul(
    ctx: typer.Context,
    sizes: Annotated[
        str | None, typer.Option("--sizes", help="Comma-separated sizes (default: 256.. up to the limit).")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, cpu or gpu.")] = "auto",
    repeats: Annotated[int, typer.Option("--repeats", min=1, max=50, help="Runs per size (median).")] = 3,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from function_node.challenges.matmul.benchmark import bench_size, default_sizes
    from function_node.challenges.matmul.compute import (
        MatmulBackend,
        NumpyBackend,
        TorchBackend,
        cuda_available,
    )
    from function_node.config.home import config_path
    from function_node.config.settings import Settings

    cli = state(ctx)
    if backend not in _BACKENDS:
        fail(f"--backend must be one of {', '.join(_BACKENDS)} (got {backend!r})", EXIT_USAGE)
    limits = (cli.settings() if config_path(cli.home).exists() else Settings()).challenge.matmul
    gpu = backend != "cpu" and cuda_available()
    if backend == "gpu" and not gpu:
        fail("--backend gpu: torch sees no CUDA device on this machine; use --backend cpu", EXIT_USAGE)
    pool = ThreadPoolExecutor(2)
    engine: MatmulBackend = TorchBackend("cuda") if gpu else NumpyBackend(executor=pool)
    info = engine.device_info()
    limit = limits.max_size if gpu else limits.max_cpu_size
    if sizes:
        try:
            chosen = [int(s) for s in sizes.split(",") if s.strip()]
        except ValueError:
            fail(f"--sizes must be whole numbers separated by commas (got {sizes!r})", EXIT_USAGE)
        too_big = [n for n in chosen if not 1 <= n <= limit]
        if too_big:
            fail(
                f"--sizes {too_big} outside 1..{limit} (challenge.matmul limits for this backend)", EXIT_USAGE
            )
    else:
        chosen = default_sizes(limit, info.memory_gb * (1 << 30) if gpu else None)
    table = Table(title=f"matrix challenge on {engine.name}: {info.name}")
    for column in (
        "n",
        "GEMM ms",
        "total ms",
        "TOPS",
        "bare GEMM ms",
        "total / bare",
        "gen / digest / merkle ms",
    ):
        table.add_column(column, justify="right")
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("benchmarking", total=len(chosen) * repeats)
            for n in chosen:
                progress.update(task, description=f"n={n}")
                row = bench_size(engine, n, repeats, tick=lambda: progress.advance(task))
                p = row.phases_ms
                table.add_row(
                    str(n),
                    f"{row.gemm_ms:.1f}",
                    f"{row.total_ms:.1f}",
                    f"{row.tops:.3f}",
                    f"{row.bare_gemm_ms:.1f}",
                    f"{row.total_ms / row.bare_gemm_ms:.2f}" if row.bare_gemm_ms > 0 else "-",
                    f"{p.get('generate', 0):.1f} / {p.get('digest', 0):.1f} / {p.get('merkle', 0):.1f}",
                )
    finally:
        pool.shutdown()
    Console().print(table)
    typer.echo(f"medians of {repeats} runs per size; TOPS = 2n³ / GEMM time")
