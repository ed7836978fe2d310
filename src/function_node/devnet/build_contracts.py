"""``python -m function_node.devnet.build_contracts [--check]``: compile contracts/ into the package.

Without flags it (re)writes ``src/function_node/chain/abi`` and ``.../artifacts``. ``--check`` compiles
and exits 1 if the committed files differ from the sources (CI and a test run it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from function_node.devnet.solc import SolcError, compile_contracts, render_outputs, repo_root, write_outputs

__all__ = ["check", "main"]


def _chain_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "chain"


def check(contracts_dir: Path, chain_dir: Path) -> list[str]:
    """Relative paths whose committed content differs from a fresh build (empty: all match)."""
    build = compile_contracts(contracts_dir)
    stale: list[str] = []
    for rel, text in render_outputs(build.contracts).items():
        path = chain_dir / rel
        if not path.exists() or path.read_text() != text:
            stale.append(rel)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m function_node.devnet.build_contracts")
    parser.add_argument("--check", action="store_true", help="fail if the committed outputs are out of date")
    parser.add_argument("--contracts", type=Path, default=repo_root() / "contracts")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = check(args.contracts, _chain_dir())
            if stale:
                print(f"out of date: {', '.join(stale)}; run python -m function_node.devnet.build_contracts")
                return 1
            print("contract outputs are up to date")
            return 0
        build = compile_contracts(args.contracts)
    except SolcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in build.warnings:
        print(warning, file=sys.stderr)
    for path in write_outputs(build.contracts, _chain_dir()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
