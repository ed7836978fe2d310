"""The Python steps of bench/gpu_check.sh (issue 15's check of the CUDA path), one subcommand each.

    python3 bench/gpu/steps.py env --device cuda --out RAW/env.json
    python3 bench/gpu/steps.py bare --device cuda --sizes 4096,8192 --out RAW/bare.json
    python3 bench/gpu/steps.py home DIR            # a node home; prints "PORT NODE_ADDRESS SCHEDULER_KEY"
    python3 bench/gpu/steps.py wait URL            # until URL/health answers 200
    python3 bench/gpu/steps.py junit RAW/pytest.xml --device cuda
    python3 bench/gpu/steps.py root --challenge RAW/challenge.txt --size N --seed S --prover A --out F
    python3 bench/gpu/steps.py deps                # every requirement of the node installed, in range

Each prints what it found and exits 0 (passed) or 1 (failed); the shell script records that per step.
bench/gpu/summary.py then reads what they wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, Final

# function_node is imported by the steps that use it, so `env` still reports what is missing when it
# cannot be imported at all.

BARE_REPEATS: Final = 10
BARE_INPUT_SETS: Final = 3  # rotated, so no two timed products in a row read the same operands


def _distribution_problems() -> list[str]:
    """Every requirement of function-node (and of what it needs, recursively) that is missing or of a
    version outside its specifier, as installed now (sys.path: PYTHONPATH first)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    problems: list[str] = []
    seen: set[str] = set()
    todo = ["function-node"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{req.name} (needed by {name}: {text}) is not installed")
                continue
            if req.specifier and not req.specifier.contains(version, prereleases=True):
                problems.append(f"{req.name} {version} does not satisfy {name}'s {text}")
            todo.append(req.name)
    return problems


def cmd_deps(args: argparse.Namespace) -> int:
    del args
    problems = _distribution_problems()
    print("\n".join(problems) or "every requirement of function-node is installed, in range")
    return 1 if problems else 0


def cmd_env(args: argparse.Namespace) -> int:
    import torch

    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "torch": str(torch.__version__),
        "torchCuda": torch.version.cuda,
        "cudaAvailable": bool(torch.cuda.is_available()),
        "versions": {},
    }
    for name in ("function-node", "numpy", "triton", "aiohttp", "pydantic", "web3", "pytest"):
        try:
            report["versions"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            report["versions"][name] = None
    if report["cudaAvailable"]:
        props = torch.cuda.get_device_properties(0)
        report["gpu"] = {
            "name": str(props.name),
            "computeCapability": f"{props.major}.{props.minor}",
            "memoryGiB": round(props.total_memory / (1 << 30), 1),
            "multiprocessors": int(props.multi_processor_count),
        }
    report["problems"] = _distribution_problems()
    if args.device == "cuda" and not report["cudaAvailable"]:
        report["problems"].append("torch.cuda.is_available() is False on the CUDA run")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 1 if report["problems"] else 0


def cmd_bare(args: argparse.Namespace) -> int:
    """Bare torch._int_mm, n×n int8 → int32, median of BARE_REPEATS after a warm-up; CUDA events on a
    GPU (the device's own clock), a synchronised host clock on torch's CPU device."""
    import torch

    dev = torch.device(args.device)
    event: Any = torch.cuda.Event  # untyped in torch's stubs
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        sets = [
            (
                torch.randint(-128, 128, (n, n), dtype=torch.int8, device=dev),
                torch.randint(-128, 128, (n, n), dtype=torch.int8, device=dev),
            )
            for _ in range(BARE_INPUT_SETS)
        ]
        for a, b in sets:  # warm-up: cuBLASLt's heuristic, the allocator
            torch._int_mm(a, b)
        times = []
        for i in range(BARE_REPEATS):
            a, b = sets[i % len(sets)]
            if dev.type == "cuda":
                start, end = event(enable_timing=True), event(enable_timing=True)
                start.record()
                torch._int_mm(a, b)
                end.record()
                end.synchronize()
                times.append(float(start.elapsed_time(end)))
            else:
                t0 = time.perf_counter()
                torch._int_mm(a, b)
                times.append((time.perf_counter() - t0) * 1000)
        ms = statistics.median(times)
        rows.append({"n": n, "ms": ms, "minMs": min(times), "tops": 2 * n**3 / (ms / 1000) / 1e12})
        print(f"bare _int_mm n={n}: median {ms:.3f} ms (min {min(times):.3f}) = {rows[-1]['tops']:.1f} TOPS")
        del sets
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    timer = "cuda events" if dev.type == "cuda" else "perf_counter"
    Path(args.out).write_text(json.dumps({"timer": timer, "repeats": BARE_REPEATS, "rows": rows}, indent=2))
    return 0


def cmd_home(args: argparse.Namespace) -> int:
    """A node home: static gateway and scheduler lists, no models, the development provider key as a
    plaintext key file; plus the scheduler's key beside it. Public development keys only."""
    import yaml

    from function_node.devnet.homes import DEV_GATEWAY_KEY, DEV_PROVIDER_KEY, DEV_SCHEDULER_KEY
    from function_node.devnet.process import free_port
    from function_node.keys import write_plaintext
    from function_node.signing import LocalSigner

    home = Path(args.dir)
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    node, scheduler = LocalSigner.from_hex(DEV_PROVIDER_KEY), LocalSigner.from_hex(DEV_SCHEDULER_KEY)
    gateway = LocalSigner.from_hex(DEV_GATEWAY_KEY)
    config = {
        "node": {"listenAddress": "127.0.0.1", "listenPort": port, "keyFile": "nodekey.json"},
        "logger": {"verbosity": "info", "format": "json"},
        "registry": {"static": {"gateways": [gateway.address], "schedulers": [scheduler.address]}},
    }
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    (home / "backend.yaml").write_text(yaml.safe_dump({"models": []}))
    write_plaintext(home / "nodekey.json", node, force=True)
    write_plaintext(home / "scheduler.json", scheduler, force=True)
    print(port, node.address, home / "scheduler.json")
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(args.url.rstrip("/") + "/health", timeout=2) as resp:
                if resp.status == 200:
                    print(f"{args.url}/health answered 200")
                    return 0
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    print(f"{args.url}/health did not answer within {args.timeout} s")
    return 1


def junit_counts(path: Path) -> dict[str, int]:
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def cmd_junit(args: argparse.Namespace) -> int:
    """On CUDA every selected test must run and pass: a skip there means the GPU path was not tested."""
    counts = junit_counts(Path(args.xml))
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    bad = counts["failures"] + counts["errors"] + (counts["skipped"] if args.device == "cuda" else 0)
    if counts["passed"] == 0 or bad:
        print(
            "pytest -m gpu: " + ("nothing passed" if counts["passed"] == 0 else "failures, errors or skips")
        )
        return 1
    return 0


def _challenge_root(text: str) -> str | None:
    line = next((ln for ln in text.splitlines() if "merkle root" in ln), "")
    match = re.search(r"0x[0-9a-f]{64}", line)
    return match.group(0) if match else None


def cmd_root(args: argparse.Namespace) -> int:
    """The whole root recomputed on the CPU (numpy, float64 GEMM) for the seed and the node's address,
    against the root the node committed to in the challenge's round one."""
    from function_node.challenges.matmul.commitment import MerkleTree
    from function_node.challenges.matmul.compute import NumpyBackend
    from function_node.challenges.matmul.generate import MatrixKeys, parse_seed

    node_root = _challenge_root(Path(args.challenge).read_text(errors="replace"))
    if node_root is None:
        print(f"no merkle root in {args.challenge}: the challenge's round one gave none to compare")
        return 1
    keys = MatrixKeys.bind(parse_seed(args.seed), args.prover)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        result = NumpyBackend(executor=pool).compute(args.size, keys)
    cpu_root = "0x" + MerkleTree.build(result.digests.tolist()).root.hex()
    seconds = time.perf_counter() - t0
    same = node_root == cpu_root
    report = {
        "size": args.size,
        "nodeRoot": node_root,
        "cpuRoot": cpu_root,
        "same": same,
        "cpuSeconds": seconds,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env")
    p.add_argument("--device", choices=("cuda", "cpu"), required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("bare")
    p.add_argument("--device", choices=("cuda", "cpu"), required=True)
    p.add_argument("--sizes", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("home")
    p.add_argument("dir")
    p = sub.add_parser("wait")
    p.add_argument("url")
    p.add_argument("--timeout", type=float, default=60.0)
    p = sub.add_parser("junit")
    p.add_argument("xml")
    p.add_argument("--device", choices=("cuda", "cpu"), required=True)
    p = sub.add_parser("root")
    p.add_argument("--challenge", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--prover", required=True)
    p.add_argument("--out", required=True)
    sub.add_parser("deps")
    args = parser.parse_args()
    commands = {
        "env": cmd_env,
        "bare": cmd_bare,
        "home": cmd_home,
        "wait": cmd_wait,
        "junit": cmd_junit,
        "root": cmd_root,
        "deps": cmd_deps,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
