"""bench/gpu_check.sh's verdicts (issue 15): bench/gpu/summary.py's exit codes and goals, and
bench/gpu/steps.py's rule that a skipped CUDA test fails the pytest step on a GPU machine.

The figures below are inputs written for these tests (no GPU measured them): they sit on either side of
each goal's limit, so every verdict is computed, not looked up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).parent.parent.parent / "bench" / "gpu"
STEPS = ("install", "env", "pytest", "bench", "challenge", "root", "bare")


def bench_row(
    n: int, *, generate: float, gemm: float, digest: float, merkle: float, bare: float
) -> dict[str, Any]:
    total = generate + gemm + digest + merkle
    return {
        "n": n,
        "gemmMs": gemm,
        "totalMs": total,
        "bareGemmMs": bare,
        "phasesMs": {"generate": generate, "gemm": gemm, "digest": digest, "merkle": merkle},
    }


def write_raw(raw: Path, *, failed: str = "", row: dict[str, Any], same_root: bool = True) -> None:
    raw.mkdir()
    (raw / "steps.tsv").write_text("".join(f"{s}\t{1 if s == failed else 0}\t3\t30\n" for s in STEPS))
    (raw / "bench.json").write_text(json.dumps({"elementwisePasses": "compiled", "rows": [row]}))
    root = {"size": 8192, "nodeRoot": "0x" + "ab" * 32, "cpuRoot": "0x" + ("ab" if same_root else "cd") * 32}
    (raw / "root.json").write_text(json.dumps({**root, "same": same_root, "cpuSeconds": 4.0}))


def summarise(tmp_path: Path, device: str = "cuda") -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "summary.py"), str(tmp_path / "raw"), str(tmp_path), "--device", device],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, json.loads((tmp_path / "summary.json").read_text()), done.stdout


def test_every_step_passed_and_every_goal_met_is_exit_0(tmp_path: Path) -> None:
    # total 7.5 ms = 1.29× bare 5.8; GEMM 6.0 ms = 97% of bare TOPS; (0.5 + 0.4) / 7.5 = 12%
    write_raw(
        tmp_path / "raw", row=bench_row(16384, generate=0.5, gemm=6.0, digest=0.4, merkle=0.6, bare=5.8)
    )
    code, summary, out = summarise(tmp_path)
    assert code == 0, out
    assert summary["verdict"] == "PASSED"
    assert [g["met"] for g in summary["goals"]] == [True, True, True, True]
    assert [g["value"] for g in summary["goals"][:3]] == [1.293, 0.967, 0.12]
    assert summary["rows"][0]["computeOverBare"] == 1.19
    assert out.rstrip().endswith("gpu_check: PASSED")


def test_a_missed_goal_is_exit_3_and_names_it(tmp_path: Path) -> None:
    # The Merkle tree takes 21 ms: total 27.9 ms = 4.81× bare, every other figure within its goal.
    write_raw(
        tmp_path / "raw", row=bench_row(16384, generate=0.5, gemm=6.0, digest=0.4, merkle=21.0, bare=5.8)
    )
    code, summary, out = summarise(tmp_path)
    assert code == 3, out
    assert summary["verdict"] == "PASSED, BUT GOALS MISSED"
    assert summary["missedGoals"] == ["challenge total / bare _int_mm ≤ 1.3 at n = 16384"]
    assert summary["rows"][0]["computeOverBare"] == 1.19  # without the tree, as the node's totalTimeMs
    assert "| challenge total / bare _int_mm ≤ 1.3 at n = 16384 | 4.81 | NO |" in out


def test_different_roots_and_a_slow_gemm_are_missed_goals(tmp_path: Path) -> None:
    # GEMM 6.9 ms against bare 4.4: 64% of bare TOPS (< 70%); generation + digests 3 of 10 ms is 30%: met.
    row = bench_row(16384, generate=2.0, gemm=6.9, digest=1.0, merkle=0.1, bare=4.4)
    write_raw(tmp_path / "raw", row=row, same_root=False)
    code, summary, _ = summarise(tmp_path)
    assert code == 3
    assert summary["missedGoals"] == [
        "challenge total / bare _int_mm ≤ 1.3 at n = 16384",
        "challenge GEMM TOPS / bare _int_mm TOPS ≥ 0.7 at n = 16384",
        "CPU and GPU roots identical (challenge, whole root)",
    ]
    assert summary["goals"][2] == {
        "goal": "(generation + digests) / total ≤ 0.3 at n = 16384",
        "value": 0.3,
        "met": True,
    }


def test_a_failed_step_is_exit_1_even_with_every_goal_met(tmp_path: Path) -> None:
    write_raw(
        tmp_path / "raw",
        failed="challenge",
        row=bench_row(16384, generate=0.5, gemm=6.0, digest=0.4, merkle=0.6, bare=5.8),
    )
    code, summary, out = summarise(tmp_path)
    assert code == 1
    assert (summary["verdict"], summary["failedSteps"]) == ("FAILED", ["challenge"])
    assert "gpu_check: FAILED; failed steps: challenge" in out


def test_the_cpu_rehearsal_judges_steps_only(tmp_path: Path) -> None:
    # torch's CPU device is far from every goal: the rehearsal does not judge them.
    write_raw(tmp_path / "raw", row=bench_row(512, generate=6.0, gemm=0.4, digest=1.8, merkle=1.0, bare=0.4))
    code, summary, _ = summarise(tmp_path, device="cpu")
    assert code == 0
    assert (summary["verdict"], summary["goals"]) == ("PASSED", [])


def junit(tmp_path: Path, *, tests: int, skipped: int, failures: int = 0) -> Path:
    path = tmp_path / "pytest.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" '
        f'failures="{failures}" skipped="{skipped}" tests="{tests}"></testsuite></testsuites>'
    )
    return path


@pytest.mark.parametrize(
    ("device", "tests", "skipped", "failures", "code"),
    [
        ("cuda", 17, 0, 0, 0),
        ("cuda", 17, 1, 0, 1),  # one CUDA test did not run: the GPU path is not tested
        ("cuda", 17, 17, 0, 1),
        ("cuda", 17, 0, 1, 1),
        ("cpu", 17, 1, 0, 0),  # the rehearsal: fxn doctor's CUDA proof skips without CUDA
        ("cpu", 17, 17, 0, 1),  # nothing ran at all
    ],
)
def test_pytest_step_verdict(
    tmp_path: Path, device: str, tests: int, skipped: int, failures: int, code: int
) -> None:
    xml = junit(tmp_path, tests=tests, skipped=skipped, failures=failures)
    done = subprocess.run(
        [sys.executable, str(BENCH / "steps.py"), "junit", str(xml), "--device", device],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == code, done.stdout + done.stderr
    passed = tests - skipped - failures
    assert done.stdout.splitlines()[0] == (
        f"tests={tests} failures={failures} errors=0 skipped={skipped} passed={passed}"
    )
