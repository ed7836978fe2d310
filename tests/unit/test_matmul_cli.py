"""``fxn bench matmul`` and ``fxn challenge``'s usage errors, through the real console-script entry."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from function_node.keys import write_plaintext
from function_node.signing import LocalSigner
from tests.fixtures.foundation import FxnCli


def test_bench_matmul_prints_a_table(fxn_cli: FxnCli) -> None:
    result = fxn_cli("bench", "matmul", "--sizes", "64,96", "--backend", "cpu", "--repeats", "1")
    assert result.code == 0, result.stderr
    assert "GEMM ms" in result.stdout and "bare GEMM ms" in result.stdout
    assert re.search(r"│\s*64\s*│", result.stdout) and re.search(r"│\s*96\s*│", result.stdout)
    assert "medians of 1 runs per size" in result.stdout


def test_bench_matmul_usage_errors(fxn_cli: FxnCli) -> None:
    result = fxn_cli("bench", "matmul", "--sizes", "5000", "--backend", "cpu")
    assert result.code == 2
    assert (
        result.stderr == "error: --sizes [5000] outside 1..4096 (challenge.matmul limits for this backend)\n"
    )
    result = fxn_cli("bench", "matmul", "--sizes", "a,b", "--backend", "cpu")
    assert result.code == 2
    assert result.stderr == "error: --sizes must be whole numbers separated by commas (got 'a,b')\n"
    result = fxn_cli("bench", "matmul", "--backend", "tpu")
    assert result.code == 2
    assert result.stderr == "error: --backend must be one of auto, cpu, gpu, torch-cpu (got 'tpu')\n"


def test_bench_matmul_json_has_every_phase(fxn_cli: FxnCli) -> None:
    result = fxn_cli("bench", "matmul", "--sizes", "64,96", "--backend", "cpu", "--repeats", "2", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)  # nothing but the object: no table, no progress bar
    assert (report["backend"], report["device"], report["repeats"]) == ("cpu", "cpu", 2)
    assert report["elementwisePasses"] == "numpy"
    assert set(report["deviceInfo"]) == {"name", "computeCapability", "memoryGB"}
    assert [row["n"] for row in report["rows"]] == [64, 96]
    for row in report["rows"]:
        assert set(row["phasesMs"]) == {"generate", "gemm", "digest", "merkle"}
        assert row["gemmMs"] == row["phasesMs"]["gemm"] > 0
        assert row["totalMs"] >= row["phasesMs"]["generate"] + row["gemmMs"] + row["phasesMs"]["digest"]
        assert row["tops"] == pytest.approx(2 * row["n"] ** 3 / (row["gemmMs"] / 1000) / 1e12)
        assert row["bareTops"] == pytest.approx(2 * row["n"] ** 3 / (row["bareGemmMs"] / 1000) / 1e12)


def test_bench_matmul_torch_cpu_runs_the_gpu_code_path(fxn_cli: FxnCli) -> None:
    pytest.importorskip("torch", reason="torch (optional extra) is not installed")
    result = fxn_cli("bench", "matmul", "--sizes", "64", "--backend", "torch-cpu", "--repeats", "1", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["backend"], report["device"], report["elementwisePasses"]) == ("torch-cpu", "cpu", "eager")
    assert report["torch"].startswith("2.")
    # The CPU limit applies: torch's CPU device is no faster than numpy's.
    result = fxn_cli("bench", "matmul", "--sizes", "5000", "--backend", "torch-cpu")
    assert result.code == 2
    assert (
        result.stderr == "error: --sizes [5000] outside 1..4096 (challenge.matmul limits for this backend)\n"
    )


def test_bench_matmul_backend_refusals_without_torch_or_cuda(
    fxn_cli: FxnCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from function_node.challenges.matmul.compute import cuda_available

    if cuda_available():
        pytest.skip("this machine has CUDA: --backend gpu is not refused here")
    result = fxn_cli("bench", "matmul", "--backend", "gpu")
    assert result.code == 2
    assert result.stderr == (
        "error: --backend gpu: torch sees no CUDA device on this machine; use --backend cpu\n"
    )
    monkeypatch.setitem(sys.modules, "torch", None)  # torch cannot be imported in this process now
    result = fxn_cli("bench", "matmul", "--backend", "torch-cpu")
    assert result.code == 2
    assert result.stderr == "error: --backend torch-cpu needs torch (pip install torch); use --backend cpu\n"


def test_challenge_usage_errors(fxn_cli: FxnCli, scheduler_signer: LocalSigner, tmp_path: Path) -> None:
    key = tmp_path / "scheduler.json"
    write_plaintext(key, scheduler_signer)
    result = fxn_cli("challenge", "IDENTITY", "{nope", "--key", str(key), "--node", "http://127.0.0.1:9")
    assert result.code == 2
    assert result.stderr.startswith("error: PAYLOAD is not valid JSON")
    result = fxn_cli("challenge", "IDENTITY", "--key", str(key), "--node", "ftp://x")
    assert result.code == 2
    assert result.stderr == "error: --node must be an http:// or https:// URL (got 'ftp://x')\n"
    args = ["--key", str(key), "--node", "http://127.0.0.1:9"]
    result = fxn_cli("challenge", "MATRIX_MULTIPLICATION", '{"size": 8, "seed": "0x12"}', *args)
    assert result.code == 2
    assert result.stderr == 'error: PAYLOAD seed must be "0x" followed by 64 hex digits (32 bytes)\n'
    result = fxn_cli("challenge", "MATRIX_MULTIPLICATION", '{"size": -1}', *args)
    assert result.code == 2
    assert result.stderr == "error: PAYLOAD size must be a positive integer\n"


def test_challenge_unreachable_node_is_exit_1(
    fxn_cli: FxnCli, scheduler_signer: LocalSigner, tmp_path: Path
) -> None:
    from function_node.devnet.process import free_port

    key = tmp_path / "scheduler.json"
    write_plaintext(key, scheduler_signer)
    url = f"http://127.0.0.1:{free_port()}"
    result = fxn_cli("challenge", "IDENTITY", "--key", str(key), "--node", url)
    assert result.code == 1
    assert result.stderr.startswith(f"error: cannot reach the node at {url}/challenge")
