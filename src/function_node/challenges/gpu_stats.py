"""GPU inventory for IDENTITY (SPEC §7.1): the first source that answers, in the order of the spec.

NVML first (a library call, no subprocess), then ``nvidia-smi``, ``rocm-smi`` and macOS
``system_profiler``. Every entry names its source and carries ``ld_preload``: these figures are the
node's own word, and a preloaded library could make NVML or the tools say anything. No GPU is ``[]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from function_node.challenges.gpu_sources import (
    NVIDIA_SMI_FIELDS,
    parse_nvidia_smi,
    parse_rocm_smi,
    parse_system_profiler,
    read_nvml,
)

if TYPE_CHECKING:
    from function_node.metrics import NodeMetrics

__all__ = [
    "Runner",
    "collect_gpu_stats",
    "export_gpu_metrics",
    "import_nvml",
    "run_tool",
    "update_gpu_metrics",
]

TOOL_TIMEOUT_S: Final = 5.0
NVIDIA_SMI_ARGS: Final = ("--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS), "--format=csv,noheader,nounits")
ROCM_SMI_ARGS: Final = (
    "--showproductname",
    "--showmeminfo",
    "vram",
    "--showuse",
    "--showmemuse",
    "--showdriverversion",
    "--showbus",
    "--showserial",
    "--showuniqueid",
    "--csv",
)
SYSTEM_PROFILER_ARGS: Final = ("SPDisplaysDataType", "SPHardwareDataType", "-json")

Runner = Callable[[list[str]], str | None]
"""Runs a tool (argv) and returns its stdout, or None if it is absent, fails or times out."""


def run_tool(argv: list[str]) -> str | None:
    path = shutil.which(argv[0])
    if path is None:
        return None
    try:
        done = subprocess.run(  # fixed argv, no shell, the tool found on PATH
            [path, *argv[1:]], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def import_nvml() -> Any:
    import pynvml

    return pynvml


def collect_gpu_stats(
    *,
    runner: Runner = run_tool,
    nvml: Callable[[], Any] | None = import_nvml,
    environ: Mapping[str, str] | None = None,
    platform: str = sys.platform,
) -> list[dict[str, Any]]:
    """GPU entries from the first source that finds any; blocking (run it in a thread)."""
    env = os.environ if environ is None else environ
    entries: list[dict[str, Any]] = []
    if nvml is not None:
        try:
            entries = read_nvml(nvml())
        except Exception:  # no libnvidia-ml, no driver, or pynvml missing: try the next source
            entries = []
    if not entries:
        text = runner(["nvidia-smi", *NVIDIA_SMI_ARGS])
        entries = parse_nvidia_smi(text) if text else []
    if not entries:
        text = runner(["rocm-smi", *ROCM_SMI_ARGS])
        entries = parse_rocm_smi(text) if text else []
    if not entries and platform == "darwin":
        text = runner(["system_profiler", *SYSTEM_PROFILER_ARGS])
        try:
            entries = parse_system_profiler(text) if text else []
        except ValueError:  # not JSON: an old macOS without -json
            entries = []
    preload = bool(env.get("LD_PRELOAD") or env.get("DYLD_INSERT_LIBRARIES"))
    for item in entries:
        item["ld_preload"] = preload
    return entries


def export_gpu_metrics(metrics: NodeMetrics, gpus: list[dict[str, Any]]) -> None:
    """NVML figures go to the GPU gauges (SPEC §10); tool-parsed figures are not exported."""
    for index, gpu in enumerate(gpus):
        if gpu.get("source") != "nvml":
            continue
        labels = (str(index), str(gpu.get("name") or ""))
        if gpu.get("vram_total_mb") is not None:
            metrics.gpu_memory_total.labels(*labels).set(gpu["vram_total_mb"] * (1 << 20))
        if gpu.get("vram_used_mb") is not None:
            metrics.gpu_memory_used.labels(*labels).set(gpu["vram_used_mb"] * (1 << 20))
        if gpu.get("utilization_gpu_pct") is not None:
            metrics.gpu_utilization.labels(*labels).set(gpu["utilization_gpu_pct"] / 100)


def update_gpu_metrics(metrics: NodeMetrics, nvml: Callable[[], Any] = import_nvml) -> bool:
    """Read NVML now and set the GPU gauges; False, with nothing set, where NVML is absent or fails.

    Only NVML: it is a library call, cheap enough to repeat; the tools are subprocesses. Blocking.
    """
    try:
        gpus = read_nvml(nvml())
    except Exception:  # no pynvml, no libnvidia-ml, no driver: there is nothing to export
        return False
    export_gpu_metrics(metrics, gpus)
    return True
