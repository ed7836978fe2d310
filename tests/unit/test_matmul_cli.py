"""``fxn bench matmul`` and ``fxn challenge``'s usage errors, through the real console-script entry."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert result.stderr == "error: --backend must be one of auto, cpu, gpu (got 'tpu')\n"


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
