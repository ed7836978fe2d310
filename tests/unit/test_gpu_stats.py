"""GPU inventory parsers against recorded outputs (tests/data/gpu/, each tool's documented format).

NVML itself cannot run without an NVIDIA driver, so its reader is driven by a fake ``pynvml`` module
(the tests say so in their names); the subprocess sources are driven through the runner argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from function_node.challenges.gpu_sources import (
    parse_nvidia_smi,
    parse_rocm_smi,
    parse_system_profiler,
    read_nvml,
)
from function_node.challenges.gpu_stats import NVIDIA_SMI_ARGS, collect_gpu_stats

DATA = Path(__file__).parent.parent / "data" / "gpu"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_nvidia_smi_two_gpus() -> None:
    gpus = parse_nvidia_smi(_read("nvidia-smi-2gpu.csv"))
    assert len(gpus) == 2
    assert gpus[0] == {
        "name": "NVIDIA H100 80GB HBM3",
        "driver_version": "550.54.15",
        "vram_total_mb": 81559,
        "vram_used_mb": 1024,
        "vram_free_mb": 80077,
        "utilization_gpu_pct": 37.0,
        "utilization_mem_pct": 12.0,
        "uuid": "GPU-5f6e2b1a-8c3d-4e9f-a1b2-0c4d5e6f7a8b",
        "pci_bus_id": "00000000:18:00.0",
        "serial": "1654922008585",
        "source": "nvidia-smi",
    }
    assert gpus[1]["pci_bus_id"] == "00000000:2A:00.0"


def test_nvidia_smi_na_fields_become_none() -> None:
    rtx, t4 = parse_nvidia_smi(_read("nvidia-smi-na.csv"))
    assert rtx["utilization_gpu_pct"] is None
    assert rtx["utilization_mem_pct"] is None
    assert rtx["serial"] is None
    assert rtx["vram_used_mb"] == 412
    assert (t4["vram_used_mb"], t4["vram_free_mb"]) == (None, None)
    assert t4["serial"] == "0324119012345"  # leading zero kept: serials are text


def test_nvidia_smi_no_gpu_and_short_lines() -> None:
    assert parse_nvidia_smi(_read("nvidia-smi-empty.csv")) == []
    (short,) = parse_nvidia_smi("Tesla V100, 470.1, 16160\n")
    assert short["vram_total_mb"] == 16160 and short["uuid"] is None


def test_rocm_smi_sections_are_merged_per_card() -> None:
    card0, card1 = parse_rocm_smi(_read("rocm-smi-2gpu.csv"))
    assert card0 == {
        "name": "AMD Instinct MI300X",
        "driver_version": "6.7.0",
        "vram_total_mb": 196288,
        "vram_used_mb": 283,
        "vram_free_mb": 196005,
        "utilization_gpu_pct": 5.0,
        "utilization_mem_pct": 0.0,
        "uuid": "0x18f68e602b8a790f",
        "pci_bus_id": "0000:0C:00.0",
        "serial": "692251001124",
        "source": "rocm-smi",
    }
    assert card1["serial"] is None
    assert card1["vram_used_mb"] == 1024
    assert card1["utilization_gpu_pct"] == 100.0


def test_rocm_smi_single_table() -> None:
    (card,) = parse_rocm_smi(_read("rocm-smi-one-table.csv"))
    assert card["name"] == "Radeon RX 6800 XT"
    assert card["utilization_mem_pct"] == 4.0
    assert card["vram_total_mb"] == 16368
    assert card["driver_version"] is None
    assert card["serial"] is None


def test_system_profiler_apple_silicon_is_unified() -> None:
    (gpu,) = parse_system_profiler(_read("system_profiler-m2.json"))
    assert gpu["name"] == "Apple M2 Pro"
    assert gpu["unified_memory"] is True
    assert gpu["vram_total_mb"] == 32768
    assert gpu["gpu_cores"] == 19
    assert gpu["source"] == "system_profiler"


def test_system_profiler_discrete_and_shared() -> None:
    intel, amd = parse_system_profiler(_read("system_profiler-intel-amd.json"))
    assert (intel["unified_memory"], intel["vram_total_mb"]) == (True, 1536)
    assert (amd["unified_memory"], amd["vram_total_mb"]) == (False, 8192)
    assert parse_system_profiler(_read("system_profiler-none.json")) == []


class _NotSupportedError(Exception):
    pass


def _fake_nvml(count: int = 2, serial_supported: bool = True) -> SimpleNamespace:
    calls: list[str] = []

    def serial(handle: int) -> str:
        if not serial_supported:
            raise _NotSupportedError
        return f"SN{handle}"

    return SimpleNamespace(
        calls=calls,
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlSystemGetDriverVersion=lambda: b"550.54.15",
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: "NVIDIA H100 80GB HBM3",
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(
            total=80 * (1 << 30), used=(h + 1) * (1 << 30), free=(79 - h) * (1 << 30)
        ),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=50 + h, memory=10),
        nvmlDeviceGetUUID=lambda h: f"GPU-{h}",
        nvmlDeviceGetPciInfo=lambda h: SimpleNamespace(busId=f"00000000:{h:02X}:00.0".encode()),
        nvmlDeviceGetSerial=serial,
    )


def test_nvml_reader_with_fake_nvml_module() -> None:
    nvml = _fake_nvml(serial_supported=False)
    gpus = read_nvml(nvml)
    assert nvml.calls == ["init", "shutdown"]
    assert [g["vram_used_mb"] for g in gpus] == [1024, 2048]
    assert gpus[1] == {
        "name": "NVIDIA H100 80GB HBM3",
        "driver_version": "550.54.15",
        "vram_total_mb": 81920,
        "vram_used_mb": 2048,
        "vram_free_mb": 79872,
        "utilization_gpu_pct": 51.0,
        "utilization_mem_pct": 10.0,
        "uuid": "GPU-1",
        "pci_bus_id": "00000000:01:00.0",
        "serial": None,
        "source": "nvml",
    }


class _Runner:
    def __init__(self, outputs: Mapping[str, str | None]) -> None:
        self.outputs = outputs
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> str | None:
        self.calls.append(argv)
        return self.outputs.get(argv[0])


def _no_nvml() -> Any:
    raise ImportError("libnvidia-ml.so.1 not found")


def test_sources_in_order_nvml_first_with_fake_nvml() -> None:
    runner = _Runner({"nvidia-smi": _read("nvidia-smi-2gpu.csv")})
    gpus = collect_gpu_stats(runner=runner, nvml=lambda: _fake_nvml(count=1), environ={}, platform="linux")
    assert [g["source"] for g in gpus] == ["nvml"]
    assert runner.calls == []  # no subprocess when NVML answers


def test_falls_back_to_nvidia_smi_then_rocm_smi() -> None:
    runner = _Runner({"nvidia-smi": _read("nvidia-smi-2gpu.csv")})
    gpus = collect_gpu_stats(runner=runner, nvml=_no_nvml, environ={}, platform="linux")
    assert [g["source"] for g in gpus] == ["nvidia-smi", "nvidia-smi"]
    assert runner.calls == [["nvidia-smi", *NVIDIA_SMI_ARGS]]
    runner = _Runner({"nvidia-smi": None, "rocm-smi": _read("rocm-smi-2gpu.csv")})
    gpus = collect_gpu_stats(runner=runner, nvml=_no_nvml, environ={}, platform="linux")
    assert [g["source"] for g in gpus] == ["rocm-smi", "rocm-smi"]


def test_system_profiler_only_on_macos() -> None:
    outputs = {"system_profiler": _read("system_profiler-m2.json")}
    assert collect_gpu_stats(runner=_Runner(outputs), nvml=_no_nvml, environ={}, platform="linux") == []
    gpus = collect_gpu_stats(runner=_Runner(outputs), nvml=_no_nvml, environ={}, platform="darwin")
    assert gpus[0]["source"] == "system_profiler"
    broken = {"system_profiler": "not json"}
    assert collect_gpu_stats(runner=_Runner(broken), nvml=_no_nvml, environ={}, platform="darwin") == []


@pytest.mark.parametrize(
    ("environ", "flag"),
    [({}, False), ({"LD_PRELOAD": "/tmp/fake-nvml.so"}, True), ({"DYLD_INSERT_LIBRARIES": "x.dylib"}, True)],
)
def test_preload_flag_on_every_entry(environ: dict[str, str], flag: bool) -> None:
    runner = _Runner({"nvidia-smi": _read("nvidia-smi-2gpu.csv")})
    gpus = collect_gpu_stats(runner=runner, nvml=None, environ=environ, platform="linux")
    assert [g["ld_preload"] for g in gpus] == [flag, flag]


def test_no_gpu_anywhere_is_an_empty_list() -> None:
    assert collect_gpu_stats(runner=_Runner({}), nvml=_no_nvml, environ={}, platform="linux") == []


def test_real_machine_without_gpu_answers_a_list() -> None:
    # This machine: real pynvml (no driver) and real PATH lookups; there is no GPU here.
    gpus = collect_gpu_stats()
    assert isinstance(gpus, list)
