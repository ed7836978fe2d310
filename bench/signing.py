"""Cost of verifying one request signature: coincurve (what the node uses) vs eth-account's recover.

Prints a table of µs/op (median over several runs, each timing a batch) and the command that made it.
Goal (docs/benchmarks.md): recover_address <= 60 µs/op.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from eth_account import Account
from eth_account.messages import encode_defunct

from function_node.protocol import legacy_message, v2_message
from function_node.signing import LocalSigner, body_sha256, recover_address

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # public dev key (anvil #0)


def _per_op_us(fn: Callable[[], object], batch: int, runs: int) -> list[float]:
    fn()  # warm caches and lazy imports outside the timed runs
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=2000, help="operations per timed run")
    parser.add_argument("--runs", type=int, default=7, help="timed runs; the median is reported")
    args = parser.parse_args()

    signer = LocalSigner.from_hex(KEY)
    body = b'{"model":"llama-3-8b","messages":[{"role":"user","content":"Hello!"}]}'
    legacy = legacy_message(body_sha256(body), "1700000000", "1f2e3d4c5b6a7980")
    v2 = v2_message(signer.address, "POST", "/v1/chat/completions", body_sha256(body), "1700000000", "n1")
    sig_legacy, sig_v2 = signer.sign(legacy), signer.sign(v2)
    expected = signer.address.lower()
    assert recover_address(legacy, sig_legacy) == expected
    assert (
        Account.recover_message(encode_defunct(text=legacy), signature=bytes.fromhex(sig_legacy))
        == signer.address
    )

    # eth-account recovers through eth-keys, which itself uses coincurve when it is installed (it is here):
    # the difference is eth-account's per-call overhead (message encoding, object layers).
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("recover_address (coincurve), legacy", lambda: recover_address(legacy, sig_legacy), args.batch),
        ("recover_address (coincurve), v2", lambda: recover_address(v2, sig_v2), args.batch),
        (
            "eth_account.Account.recover_message",
            lambda: Account.recover_message(encode_defunct(text=legacy), signature=bytes.fromhex(sig_legacy)),
            max(args.batch // 10, 50),
        ),
        ("sign (coincurve), legacy", lambda: signer.sign(legacy), args.batch),
        ("body_sha256 of a 70-byte body", lambda: body_sha256(body), args.batch * 10),
    ]
    medians: dict[str, float] = {}
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"{'operation':<40} {'median µs/op':>13} {'min':>9} {'max':>9}")
    for name, fn, batch in cases:
        samples = _per_op_us(fn, batch, args.runs)
        medians[name] = statistics.median(samples)
        print(f"{name:<40} {medians[name]:>13.1f} {min(samples):>9.1f} {max(samples):>9.1f}")
    # Key derivation: what a node pays once at start, and why tests lower the work factor.
    for n in (4096, 262144):
        keystore = Account.encrypt(signer.private_key, "pw", kdf="scrypt", iterations=n)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            Account.decrypt(keystore, "pw")
            runs.append((time.perf_counter() - start) * 1e6)
        name = f"keystore decrypt, scrypt n={n}"
        print(f"{name:<40} {statistics.median(runs):>13.0f} {min(runs):>9.0f} {max(runs):>9.0f}")
    ours = medians["recover_address (coincurve), legacy"]
    theirs = medians["eth_account.Account.recover_message"]
    print(f"recover_address vs eth-account (same run): {theirs / ours:.1f}x faster")
    print(f"goal recover_address <= 60 µs/op: {'met' if ours <= 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
