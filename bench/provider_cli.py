"""``fxn provider`` end to end on anvil: register (a transaction, until its receipt) and status (100 ids).

Run: .venv/bin/python bench/provider_cli.py [--runs 5] [--ids 100]

Every figure is the wall time of a fresh ``fxn`` process, as an operator runs it: interpreter start,
imports (web3), config and key, the RPC round trips, and for register the transaction until its receipt
(anvil mines at once). "receipt wait" is what the command itself reports ("done ... after X s"), from
sending to the receipt. Medians (and min/max) over --runs, all in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from function_node.devnet.anvil import AnvilProcess
from function_node.devnet.deploy import DEV_DEPLOYER_KEY, ProviderSpec, RegistryAdmin, deploy_network
from function_node.keys import DEFAULT_SCRYPT_N, write_keystore, write_plaintext
from function_node.signing import LocalSigner

FXN = str(Path(sys.executable).parent / "fxn")
OPERATOR_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"  # anvil account 3
STATUS_KEY = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"  # anvil account 5
PASSWORD = "bench-password"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        del args


def write_home(path: Path, rpc_url: str, router: str, keystore: bool, key: str = OPERATOR_KEY) -> Path:
    path.mkdir(parents=True)
    config = {
        "node": {"publicUrl": "http://127.0.0.1:18080"},
        "rpcProvider": rpc_url,
        "chainId": 31337,
        "registry": {"routerSmartContractAddress": router},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    signer = LocalSigner.from_hex(key)
    if keystore:  # the default work factor, as `fxn init` writes it for an operator
        write_keystore(path / "nodekey.json", signer, PASSWORD, scrypt_n=DEFAULT_SCRYPT_N)
    else:
        write_plaintext(path / "nodekey.json", signer)
    return path


def run(home: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "FXN_KEY_PASSWORD": PASSWORD, "COLUMNS": "200"}
    start = time.perf_counter()
    proc = subprocess.run(
        [FXN, "--home", str(home), "provider", *args], capture_output=True, text=True, env=env, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"fxn provider {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return elapsed, proc.stdout


def receipt_wait(stdout: str) -> float:
    match = re.search(r"after (\d+\.\d+) s", stdout)
    return float(match.group(1)) if match else float("nan")


def in_process_rows(plain: Path, status_home: Path, runs: int) -> list[tuple[str, list[float], str]]:
    """The same work inside this process, imports done: what the commands cost beyond starting Python."""
    from function_node.chain.provider_lifecycle import Operator, provider_status, register_provider
    from function_node.config.loader import load_settings

    settings, status_settings = load_settings(plain), load_settings(status_home)
    signer = LocalSigner.from_hex(OPERATOR_KEY)
    operator = Operator(settings, signer.address, lambda: signer)
    register: list[float] = []
    for i in range(runs):
        start = time.perf_counter()
        asyncio.run(register_provider(operator, model_id=1, metadata="{}", entry_id=bytes([0xAA, i])))
        register.append(time.perf_counter() - start)
    status: list[float] = []
    owner = LocalSigner.from_hex(STATUS_KEY).address
    for _ in range(runs):
        start = time.perf_counter()
        asyncio.run(provider_status(status_settings, owner))
        status.append(time.perf_counter() - start)
    return [
        ("in-process register_provider()", register, "connect, plan, send, receipt; no imports"),
        ("in-process provider_status()", status, "connect, 301 reads, probe; no imports"),
    ]


def stats(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ids", type=int, default=100, help="ids the status key owns")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    health_url = f"http://127.0.0.1:{server.server_address[1]}"
    samples: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        anvil = AnvilProcess(root / "anvil.log")
        with anvil:
            rpc_url = anvil.rpc_url
            deployment = deploy_network(rpc_url)
            plain = write_home(root / "plain", rpc_url, deployment.router, keystore=False)
            encrypted = write_home(root / "keystore", rpc_url, deployment.router, keystore=True)
            # A key that owns --ids entries (registered by the admin in one batch), one reachable URL.
            owner = LocalSigner.from_hex(STATUS_KEY).address
            status_home = write_home(
                root / "status", rpc_url, deployment.router, keystore=False, key=STATUS_KEY
            )
            admin = RegistryAdmin(rpc_url, DEV_DEPLOYER_KEY, deployment)
            try:
                metadata = json.dumps({"url": health_url})
                admin.register_providers(
                    [ProviderSpec(owner, i % 7, metadata, id=f"bench-{i}".encode()) for i in range(args.ids)]
                )
            finally:
                admin.close()
            count = 0
            # Interleaved: each round takes every measurement once, so a burst of load on the shared
            # machine lands on all of them alike and the ratios within one run hold.
            for i in range(args.runs):
                for label, home, offset in (
                    ("plaintext key", plain, 0),
                    ("keystore, scrypt n=262144", encrypted, 100),
                ):
                    elapsed, out = run(home, "register", "--model-id", "1", "--id", f"0x{offset + i + 1:04x}")
                    record(f"register, {label}", elapsed)
                    record(f"  of which receipt wait ({label})", receipt_wait(out))
                record(
                    "register, registered already",
                    run(plain, "register", "--model-id", "1", "--id", "0x0001")[0],
                )
                record(
                    "register --dry-run",
                    run(plain, "register", "--model-id", "1", "--dry-run", "--id", "0xffff")[0],
                )
                elapsed, out = run(status_home, "status", "--json")
                count = len(json.loads(out))
                record(f"status --json, {count} ids", elapsed)
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", "import function_node.chain.provider_lifecycle"], check=True
                )
                record("python -c 'import ...provider_lifecycle'", time.perf_counter() - start)
            in_process = in_process_rows(plain, status_home, args.runs)
    server.shutdown()
    server.server_close()
    notes = {
        "register, plaintext key": "end to end, one transaction",
        "register, keystore, scrypt n=262144": "end to end, the key decrypted as fxn init wrote it",
        "register, registered already": "reads only, nothing sent",
        "register --dry-run": "estimate, fees, balance; nothing sent",
        f"status --json, {count} ids": f"{3 * count + 1} eth_calls in batches + 1 GET /health",
        "python -c 'import ...provider_lifecycle'": "interpreter + web3 imports alone",
    }
    rows = [(name, values, notes.get(name, "as the command reports it")) for name, values in samples.items()]
    rows += in_process
    print(f"{'measurement':<52} {'median':>8} {'min':>8} {'max':>8}  note")
    for name, values, note in rows:
        median, low, high = stats(values)
        print(f"{name:<52} {median:>7.3f}s {low:>7.3f}s {high:>7.3f}s  {note}")
    load: Any = os.getloadavg()
    print(f"runs: {args.runs}; load average at the end: {load[0]:.2f}")


if __name__ == "__main__":
    main()
