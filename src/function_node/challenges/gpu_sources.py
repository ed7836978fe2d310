"""Parsers for each GPU inventory source of SPEC §7.1: NVML, nvidia-smi CSV, rocm-smi CSV, system_profiler.

Each parser turns one tool's documented output into entries with the same keys (see :func:`entry`);
a figure the tool reports as missing (``N/A``, ``[Not Supported]``, absent) becomes None. Parsers are
pure functions of text (or of an NVML module object) so recorded outputs test them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, Final

__all__ = [
    "NVIDIA_SMI_FIELDS",
    "entry",
    "parse_nvidia_smi",
    "parse_rocm_smi",
    "parse_system_profiler",
    "read_nvml",
]

NVIDIA_SMI_FIELDS: Final = (
    "name",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
    "utilization.memory",
    "uuid",
    "pci.bus_id",
    "serial",
)
_MISSING: Final = frozenset(
    {"", "n/a", "[n/a]", "[not supported]", "not supported", "unknown", "[unknown error]"}
)
_MIB: Final = 1 << 20
_SIZE_RE: Final = re.compile(r"^\s*([\d.]+)\s*([KMGT]?)i?B\s*$", re.IGNORECASE)


def entry(source: str, **fields: Any) -> dict[str, Any]:
    """One gpuStats entry with every standard key present (None where the source had no figure)."""
    out: dict[str, Any] = {
        "name": None,
        "driver_version": None,
        "vram_total_mb": None,
        "vram_used_mb": None,
        "vram_free_mb": None,
        "utilization_gpu_pct": None,
        "utilization_mem_pct": None,
        "uuid": None,
        "pci_bus_id": None,
        "serial": None,
    }
    out.update(fields)
    out["source"] = source
    return out


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in _MISSING else value


def _number(value: str | None) -> float | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return float(text.rstrip("%").strip())
    except ValueError:
        return None


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`` (MiB, percent)."""
    out = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not "".join(row).strip():
            continue
        cells = (row + [""] * len(NVIDIA_SMI_FIELDS))[: len(NVIDIA_SMI_FIELDS)]
        values = dict(zip(NVIDIA_SMI_FIELDS, cells, strict=True))
        out.append(
            entry(
                "nvidia-smi",
                name=_text(values["name"]),
                driver_version=_text(values["driver_version"]),
                vram_total_mb=_whole(_number(values["memory.total"])),
                vram_used_mb=_whole(_number(values["memory.used"])),
                vram_free_mb=_whole(_number(values["memory.free"])),
                utilization_gpu_pct=_number(values["utilization.gpu"]),
                utilization_mem_pct=_number(values["utilization.memory"]),
                uuid=_text(values["uuid"]),
                pci_bus_id=_text(values["pci.bus_id"]),
                serial=_text(values["serial"]),
            )
        )
    return out


def _pick(row: dict[str, str], *names: str) -> str | None:
    lowered = {k.strip().lower(): v for k, v in row.items() if k is not None}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def parse_rocm_smi(text: str) -> list[dict[str, Any]]:
    """``rocm-smi --showproductname --showmeminfo vram --showuse --showmemuse --showdriverversion
    --showbus --showserial --showuniqueid --csv``: one or more CSV sections, each with a header row;
    rows keyed ``card<N>`` describe GPUs, a ``system`` row carries the driver version. Memory in bytes.
    """
    cards: dict[str, dict[str, str]] = {}
    driver: str | None = None
    header: list[str] | None = None
    for row in csv.reader(io.StringIO(text)):
        if not row or not "".join(row).strip():
            header = None
            continue
        key = row[0].strip().lower()
        # A header row starts with "device" (or "system" above a driver-version section).
        if key == "device" or (key == "system" and any("version" in c.lower() for c in row[1:])):
            header = [c.strip() for c in row]
            continue
        if header is None:
            continue
        values = dict(zip(header, row, strict=False))
        if key == "system":
            driver = _text(_pick(values, "Driver version", "Driver Version")) or driver
        elif key.startswith("card"):
            cards.setdefault(key, {}).update(values)
    out = []
    for card in sorted(cards, key=lambda c: int(c[4:]) if c[4:].isdigit() else 0):
        values = cards[card]
        total = _number(_pick(values, "VRAM Total Memory (B)"))
        used = _number(_pick(values, "VRAM Total Used Memory (B)"))
        out.append(
            entry(
                "rocm-smi",
                name=_text(_pick(values, "Card series", "Card Series", "Card model", "Card Model")),
                driver_version=driver,
                vram_total_mb=_whole(total / _MIB) if total is not None else None,
                vram_used_mb=_whole(used / _MIB) if used is not None else None,
                vram_free_mb=_whole((total - used) / _MIB)
                if total is not None and used is not None
                else None,
                utilization_gpu_pct=_number(_pick(values, "GPU use (%)")),
                utilization_mem_pct=_number(
                    _pick(values, "GPU Memory Allocated (VRAM%)", "GPU memory use (%)", "GPU Memory use (%)")
                ),
                uuid=_text(_pick(values, "Unique ID", "Unique Id")),
                pci_bus_id=_text(_pick(values, "PCI Bus")),
                serial=_text(_pick(values, "Serial Number", "Serial number")),
            )
        )
    return out


def _size_mb(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    match = _SIZE_RE.match(value)
    if not match:
        return None
    scale = {"": 1 / _MIB, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2).upper()]
    return round(float(match.group(1)) * scale)


def parse_system_profiler(text: str) -> list[dict[str, Any]]:
    """``system_profiler SPDisplaysDataType SPHardwareDataType -json`` (macOS).

    Apple silicon GPUs share the machine's memory: they report ``unified_memory: true`` and the
    physical memory as their total. Discrete GPUs report ``spdisplays_vram``.
    """
    data = json.loads(text) if text.strip() else {}
    hardware = data.get("SPHardwareDataType") or [{}]
    physical_mb = _size_mb(hardware[0].get("physical_memory"))
    out = []
    for gpu in data.get("SPDisplaysDataType") or []:
        if not isinstance(gpu, dict):
            continue
        vram = _size_mb(gpu.get("spdisplays_vram") or gpu.get("_spdisplays_vram"))
        shared = _size_mb(gpu.get("spdisplays_vram_shared"))
        vendor = str(gpu.get("spdisplays_vendor") or gpu.get("sppci_vendor") or "")
        # Discrete GPUs report their own VRAM; integrated ones share the machine's memory (Apple
        # silicon reports no figure at all: its GPU can use all of the physical memory).
        unified = vram is None and (shared is not None or "apple" in vendor.lower())
        total = (
            vram if vram is not None else shared if shared is not None else physical_mb if unified else None
        )
        out.append(
            entry(
                "system_profiler",
                name=gpu.get("sppci_model") or gpu.get("_name"),
                vram_total_mb=total,
                unified_memory=unified,
                gpu_cores=_whole(_number(str(gpu["sppci_cores"]))) if "sppci_cores" in gpu else None,
            )
        )
    return out


def _nvml_call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # NVMLError_NotSupported and friends: the figure is simply absent
        return None


def _decode(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read_nvml(nvml: Any) -> list[dict[str, Any]]:
    """Every GPU NVML sees, through the ``pynvml`` module (``nvidia-ml-py``); raises if NVML is absent."""
    nvml.nvmlInit()
    try:
        driver = _decode(_nvml_call(nvml.nvmlSystemGetDriverVersion))
        out = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = _nvml_call(nvml.nvmlDeviceGetMemoryInfo, handle)
            rates = _nvml_call(nvml.nvmlDeviceGetUtilizationRates, handle)
            pci = _nvml_call(nvml.nvmlDeviceGetPciInfo, handle)
            out.append(
                entry(
                    "nvml",
                    name=_decode(_nvml_call(nvml.nvmlDeviceGetName, handle)),
                    driver_version=driver,
                    vram_total_mb=memory.total // _MIB if memory is not None else None,
                    vram_used_mb=memory.used // _MIB if memory is not None else None,
                    vram_free_mb=memory.free // _MIB if memory is not None else None,
                    utilization_gpu_pct=float(rates.gpu) if rates is not None else None,
                    utilization_mem_pct=float(rates.memory) if rates is not None else None,
                    uuid=_decode(_nvml_call(nvml.nvmlDeviceGetUUID, handle)),
                    pci_bus_id=_decode(getattr(pci, "busId", None)) if pci is not None else None,
                    serial=_decode(_nvml_call(nvml.nvmlDeviceGetSerial, handle)),
                )
            )
        return out
    finally:
        _nvml_call(nvml.nvmlShutdown)
