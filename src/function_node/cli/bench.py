"""``fxn bench matmul``: run the matrix challenge locally at several sizes; a progress bar, then a table
of n, GEMM ms, total ms, TOPS and the bare GEMM of the same size for comparison (``--json``: one JSON
object instead, for scripts such as bench/gpu_check.sh).

``--backend torch-cpu`` runs the GPU code path (:class:`TorchBackend`) on torch's CPU device, so the
GPU benchmark's plumbing can be exercised on a machine without one; its figures say nothing about a GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from function_node.cli._common import EXIT_USAGE, fail, orjson_text, state

if TYPE_CHECKING:
    from function_node.challenges.matmul.benchmark import BenchRow
    from function_node.challenges.matmul.compute import DeviceInfo, MatmulBackend

__all__ = ["register"]

_BACKENDS: Final = ("auto", "cpu", "gpu", "torch-cpu")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Local benchmarks.", no_args_is_help=True)
    group.command("matmul", help="Time the matrix challenge at several sizes against a bare GEMM.")(matmul)
    app.add_typer(group, name="bench")


def matmul(
    ctx: typer.Context,
    sizes: Annotated[
        str | None, typer.Option("--sizes", help="Comma-separated sizes (default: 256.. up to the limit).")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend", help="auto, cpu, gpu, or torch-cpu (the GPU code path on torch's CPU device)."
        ),
    ] = "auto",
    repeats: Annotated[int, typer.Option("--repeats", min=1, max=50, help="Runs per size (median).")] = 3,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (device, rows with phases) instead.")
    ] = False,
) -> None:
    import importlib.util
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import Progress

    from function_node.challenges.matmul.benchmark import bench_size, default_sizes, elementwise_passes
    from function_node.challenges.matmul.compute import NumpyBackend, TorchBackend, cuda_available
    from function_node.config.home import config_path
    from function_node.config.settings import Settings

    cli = state(ctx)
    if backend not in _BACKENDS:
        fail(f"--backend must be one of {', '.join(_BACKENDS)} (got {backend!r})", EXIT_USAGE)
    limits = (cli.settings() if config_path(cli.home).exists() else Settings()).challenge.matmul
    gpu = backend != "cpu" and cuda_available()
    if backend == "torch-cpu":
        if importlib.util.find_spec("torch") is None:
            fail("--backend torch-cpu needs torch (pip install torch); use --backend cpu", EXIT_USAGE)
        gpu = False
    elif backend == "gpu" and not gpu:
        fail("--backend gpu: torch sees no CUDA device on this machine; use --backend cpu", EXIT_USAGE)
    pool = ThreadPoolExecutor(2)
    engine: MatmulBackend = (
        TorchBackend("cuda")
        if gpu
        else TorchBackend("cpu")
        if backend == "torch-cpu"
        else NumpyBackend(executor=pool)
    )
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
    rows: list[BenchRow] = []
    try:
        with Progress(transient=True, disable=as_json) as progress:
            task = progress.add_task("benchmarking", total=len(chosen) * repeats)
            for n in chosen:
                progress.update(task, description=f"n={n}")
                rows.append(bench_size(engine, n, repeats, tick=lambda: progress.advance(task)))
    finally:
        pool.shutdown()
    if as_json:
        typer.echo(orjson_text(_report(engine, info, repeats, rows, elementwise_passes(engine))))
        return
    _print_table(f"matrix challenge on {engine.name}: {info.name}", rows)
    typer.echo(f"medians of {repeats} runs per size; TOPS = 2n³ / GEMM time")


def _report(
    engine: MatmulBackend, info: DeviceInfo, repeats: int, rows: list[BenchRow], passes: str
) -> dict[str, Any]:
    import sys

    torch = sys.modules.get("torch")
    return {
        "backend": engine.name,
        "device": engine.device,
        "deviceInfo": info.as_json(),
        "torch": str(torch.__version__) if torch is not None else None,
        "elementwisePasses": passes,
        "repeats": repeats,
        "rows": [row.as_json() for row in rows],
    }


def _print_table(title: str, rows: list[BenchRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
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
    for row in rows:
        p = row.phases_ms
        table.add_row(
            str(row.n),
            f"{row.gemm_ms:.1f}",
            f"{row.total_ms:.1f}",
            f"{row.tops:.3f}",
            f"{row.bare_gemm_ms:.1f}",
            f"{row.total_ms / row.bare_gemm_ms:.2f}" if row.bare_gemm_ms > 0 else "-",
            f"{p.get('generate', 0):.1f} / {p.get('digest', 0):.1f} / {p.get('merkle', 0):.1f}",
        )
    Console().print(table)
