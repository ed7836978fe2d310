"""Compile contracts/*.sol with solcjs (npm package ``solc``) into ABIs and deployable bytecode.

The outputs are committed (``function_node/chain/abi/*.json``, ``function_node/chain/artifacts/*.json``)
and shipped in the wheel, so a node installed with pip never needs a compiler. A test recompiles and
checks that the committed files match the sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CONTRACT_NAMES",
    "Build",
    "CompiledContract",
    "SolcError",
    "compile_contracts",
    "find_solcjs",
    "render_outputs",
    "repo_root",
    "write_outputs",
]

CONTRACT_NAMES: Final = ("Router", "GatewayRegistry", "ProviderRegistry", "SchedulerRegistry")
OPTIMIZER_RUNS: Final = 200
EVM_VERSION: Final = "cancun"
_COMPILE_TIMEOUT_S: Final = 300.0
# The ...Live functions are non-view and registerAndStake non-pure on purpose (the live network's ABI
# declares them so); solc's notes about them are expected.
_EXPECTED_WARNINGS: Final = ("can be restricted to view", "can be restricted to pure")


class SolcError(RuntimeError):
    """solcjs is missing, or the sources do not compile."""


@dataclass(frozen=True, slots=True)
class Build:
    contracts: dict[str, CompiledContract]
    warnings: list[str]  # compiler warnings other than the expected non-view note


@dataclass(frozen=True, slots=True)
class CompiledContract:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code
    compiler: str
    sources_sha256: str


def repo_root() -> Path:
    """The source checkout this module lives in (src/function_node/devnet/solc.py -> repo root)."""
    return Path(__file__).resolve().parents[3]


def find_solcjs(root: Path | None = None) -> Path:
    """``$FXN_SOLCJS``, else ``node_modules/.bin/solcjs`` under the repo root."""
    env = os.environ.get("FXN_SOLCJS")
    path = Path(env) if env else (root or repo_root()) / "node_modules" / ".bin" / "solcjs"
    if not path.exists():
        raise SolcError(f"solcjs not found at {path}; run `npm ci` in the repo root or set FXN_SOLCJS")
    return path


def _sources(contracts_dir: Path) -> dict[str, str]:
    files = sorted(contracts_dir.glob("*.sol"))
    if not files:
        raise SolcError(f"no .sol files in {contracts_dir}")
    return {f.name: f.read_text() for f in files}


def compile_contracts(contracts_dir: Path, solcjs: Path | None = None) -> Build:
    """Compile every source in ``contracts_dir`` with fixed settings (so outputs are reproducible)."""
    sources = _sources(contracts_dir)
    digest = hashlib.sha256()
    for name, text in sources.items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    request = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    binary = solcjs or find_solcjs()
    try:
        # The answer goes to a file, not a pipe: solcjs (node) exits before a pipe has taken more than
        # 64 KiB of it, so a large build would arrive cut short.
        with tempfile.TemporaryFile() as answer:
            proc = subprocess.run(
                [str(binary), "--standard-json"],
                input=json.dumps(request).encode(),
                stdout=answer,
                stderr=subprocess.PIPE,
                timeout=_COMPILE_TIMEOUT_S,
                check=False,
            )
            answer.seek(0)
            text = answer.read().decode()
        version = subprocess.run(
            [str(binary), "--version"], capture_output=True, timeout=60, check=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise SolcError(f"could not run {binary}: {exc}") from exc
    try:
        # solcjs may print banner lines before the JSON document.
        output = json.loads(text[text.index("{") :])
    except ValueError as exc:
        raise SolcError(
            f"solcjs gave no JSON (exit {proc.returncode}): {proc.stderr.decode()[:500]}"
        ) from exc
    problems = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if problems:
        raise SolcError("\n".join(e.get("formattedMessage", e.get("message", "")) for e in problems))
    compiled: dict[str, CompiledContract] = {}
    for file_contracts in output.get("contracts", {}).values():
        for name, item in file_contracts.items():
            compiled[name] = CompiledContract(
                name=name,
                abi=item["abi"],
                bytecode="0x" + item["evm"]["bytecode"]["object"],
                compiler=version,
                sources_sha256=digest.hexdigest(),
            )
    missing = [n for n in CONTRACT_NAMES if n not in compiled]
    if missing:
        raise SolcError(f"contracts missing from the build: {', '.join(missing)}")
    warnings = [
        e.get("formattedMessage", e.get("message", ""))
        for e in output.get("errors", [])
        if e.get("severity") == "warning" and not any(w in e.get("message", "") for w in _EXPECTED_WARNINGS)
    ]
    return Build(contracts=compiled, warnings=warnings)


def render_outputs(compiled: dict[str, CompiledContract]) -> dict[str, str]:
    """Relative path (``abi/X.json``, ``artifacts/X.json``) -> file text, byte-for-byte what is committed."""
    files: dict[str, str] = {}
    for name in CONTRACT_NAMES:
        c = compiled[name]
        files[f"abi/{name}.json"] = json.dumps(c.abi, indent=2, sort_keys=True) + "\n"
        artifact = {
            "contractName": name,
            "bytecode": c.bytecode,
            "compiler": c.compiler,
            "optimizerRuns": OPTIMIZER_RUNS,
            "evmVersion": EVM_VERSION,
            "sourcesSha256": c.sources_sha256,
        }
        files[f"artifacts/{name}.json"] = json.dumps(artifact, indent=2, sort_keys=True) + "\n"
    return files


def write_outputs(compiled: dict[str, CompiledContract], chain_dir: Path) -> list[Path]:
    """Write the ABIs and artifacts under ``chain_dir`` (the function_node/chain package directory)."""
    written: list[Path] = []
    for rel, text in render_outputs(compiled).items():
        path = chain_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
