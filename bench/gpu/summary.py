"""bench/gpu_check.sh's summary: the steps, the bench figures against issue 15's goals, the challenge.

    python3 bench/gpu/summary.py RAW OUTDIR --device cuda|cpu

Reads RAW/steps.tsv and what bench/gpu/steps.py and ``fxn bench matmul --json`` wrote under RAW; writes
OUTDIR/summary.md (printed too) and OUTDIR/summary.json. Exit 0 when every step passed and, on CUDA,
every goal was met; 1 when a step failed; 3 when every step passed but a goal was missed. The goals are
not judged on the CPU rehearsal: its figures say nothing about a GPU.

"total" is the bench's: generation + GEMM + digests + the Merkle tree (built on the host CPU), as in
docs/benchmarks.md's CPU target; computeOverBare leaves the tree out, as the node's totalTimeMs does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Final

GOAL_SIZE: Final = 16384
# Issue 15's goals at n = 16384: (key, description, limit, whether the measured value must stay below it).
GOALS: Final = (
    ("totalOverBare", "challenge total / bare _int_mm", 1.3, True),
    ("gemmShareOfBareTops", "challenge GEMM TOPS / bare _int_mm TOPS", 0.70, False),
    ("generateDigestShare", "(generation + digests) / total", 0.30, True),
)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _row_figures(row: dict[str, Any], bare: dict[int, dict[str, Any]]) -> dict[str, Any]:
    p, total, gemm, bare_ms = row["phasesMs"], row["totalMs"], row["gemmMs"], row["bareGemmMs"]
    events = bare.get(row["n"])
    return {
        "n": row["n"],
        **{f"{k}Ms": round(v, 3) for k, v in p.items()},
        "totalMs": round(total, 3),
        "bareMs": round(bare_ms, 3),
        "bareEventsMs": round(events["ms"], 3) if events else None,
        "totalOverBare": round(total / bare_ms, 3) if bare_ms else None,
        # The node's own totalTimeMs (SPEC §7.2) leaves the Merkle tree out: generation, GEMM, digests.
        "computeOverBare": round((total - p["merkle"]) / bare_ms, 3) if bare_ms else None,
        "gemmShareOfBareTops": round(bare_ms / gemm, 3) if gemm else None,
        "gemmShareOfEventsTops": round(events["ms"] / gemm, 3) if events and gemm else None,
        "generateDigestShare": round((p["generate"] + p["digest"]) / total, 3) if total else None,
        "merkleShare": round(p["merkle"] / total, 3) if total else None,
    }


def _goals(rows: list[dict[str, Any]], root: Any) -> list[dict[str, Any]]:
    at = next((r for r in rows if r["n"] == GOAL_SIZE), None)
    goals = []
    for key, text, limit, below in GOALS:
        value = at.get(key) if at else None
        met = value is not None and (value <= limit if below else value >= limit)
        goals.append(
            {"goal": f"{text} {'≤' if below else '≥'} {limit} at n = {GOAL_SIZE}", "value": value, "met": met}
        )
    same = bool(root and root.get("same"))
    goals.append({"goal": "CPU and GPU roots identical (challenge, whole root)", "value": same, "met": same})
    return goals


def _markdown(summary: dict[str, Any]) -> str:
    env = summary.get("env") or {}
    gpu = env.get("gpu") or {}
    lines = [
        f"# gpu_check ({summary['device']}) {summary['verdict']}",
        "",
        f"- GPU: {gpu.get('name', '-')} (compute capability {gpu.get('computeCapability', '-')},"
        f" {gpu.get('memoryGiB', '-')} GiB); driver {summary.get('driver') or '-'}",
        f"- torch {env.get('torch', '-')} (CUDA {env.get('torchCuda', '-')}),"
        f" python {env.get('python', '-')}, triton {(env.get('versions') or {}).get('triton', '-')};"
        f" elementwise passes: {summary.get('elementwisePasses') or '-'}",
        f"- source: {summary.get('source') or '-'}",
        "",
        "| step | result | seconds | limit s |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {s['step']} | {s['result']} | {s['seconds']} | {s['limit']} |" for s in summary["steps"]]
    if summary["rows"]:
        keys = list(summary["rows"][0])
        lines += ["", "| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
        lines += ["| " + " | ".join(str(r.get(k)) for k in keys) + " |" for r in summary["rows"]]
    if summary["goals"]:
        lines += ["", "| goal (issue 15) | measured | met? |", "| --- | --- | --- |"]
        lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'NO'} |" for g in summary["goals"]]
    root = summary.get("root")
    if root:
        same = "the same" if root.get("same") else "DIFFERENT"
        lines += [
            "",
            f"root at n = {root['size']}: the node's {root['nodeRoot']} and the CPU's {root['cpuRoot']}"
            f" are {same} (numpy took {root['cpuSeconds']:.1f} s)",
        ]
    if summary.get("challenge"):
        lines += ["", "challenge (fxn challenge through a real node, CPU verifier):", "```"]
        lines += [*summary["challenge"], "```"]
    return "\n".join(lines) + "\n"


def summarise(args: argparse.Namespace) -> int:
    raw, outdir = Path(args.raw), Path(args.outdir)
    steps = []
    for line in (raw / "steps.tsv").read_text().splitlines():
        name, rc, seconds, limit = line.split("\t")[:4]
        result = "passed" if rc == "0" else ("timed out" if rc in ("124", "137") else f"FAILED (exit {rc})")
        steps.append({"step": name, "result": result, "seconds": seconds, "limit": limit})
    bench, bare_doc, root = _load(raw / "bench.json"), _load(raw / "bare.json"), _load(raw / "root.json")
    bare = {r["n"]: r for r in (bare_doc or {}).get("rows", [])}
    rows = [_row_figures(r, bare) for r in (bench or {}).get("rows", [])]
    goals = _goals(rows, root) if args.device == "cuda" else []
    challenge_path = raw / "challenge.txt"
    challenge = challenge_path.read_text(errors="replace").splitlines() if challenge_path.exists() else []
    smi = (
        (raw / "nvidia-smi.csv").read_text().strip().splitlines() if (raw / "nvidia-smi.csv").exists() else []
    )
    failed = [s["step"] for s in steps if s["result"] != "passed"]
    missed = [g["goal"] for g in goals if not g["met"]]
    verdict = "FAILED" if failed else ("PASSED" if not missed else "PASSED, BUT GOALS MISSED")
    summary = {
        "device": args.device,
        "verdict": verdict,
        "failedSteps": failed,
        "missedGoals": missed,
        "source": os.environ.get("FXN_GPU_CHECK_SOURCE"),
        "driver": smi[-1].split(",")[1].strip() if smi and "," in smi[-1] else None,
        "nvidiaSmi": smi,
        "env": _load(raw / "env.json"),
        "elementwisePasses": (bench or {}).get("elementwisePasses"),
        "steps": steps,
        "rows": rows,
        "bare": bare_doc,
        "goals": goals,
        "root": root,
        "challenge": [ln for ln in challenge if "│" in ln or "VERIFIED" in ln or "FAILED" in ln][:20],
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = _markdown(summary)
    (outdir / "summary.md").write_text(text)
    print(text)
    print(
        f"gpu_check: {verdict}"
        + (f"; failed steps: {', '.join(failed)}" if failed else "")
        + (f"; goals missed: {len(missed)}" if missed else "")
    )
    return 1 if failed else (3 if missed else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("outdir")
    parser.add_argument("--device", choices=("cuda", "cpu"), required=True)
    return summarise(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
