"""Doctor checks that need nothing outside this machine: key file, config files, GPU, a matrix proof."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from function_node.doctor.framework import DoctorContext, Finding
from function_node.errors import ConfigError

if TYPE_CHECKING:
    from function_node.challenges.matmul.compute import MatmulBackend
    from function_node.config.settings import Settings

__all__ = ["check_config", "check_gpu", "check_key", "check_matrix"]

_NVIDIA_KEY: Final = "nvidia_gpu"
# The prover of the local proof when the key file could not be read (the proof is bound to an address).
_NO_ADDRESS: Final = "0x" + "00" * 20
_NVIDIA_SOURCES: Final = ("nvml", "nvidia-smi")


async def check_config(ctx: DoctorContext) -> Sequence[Finding]:
    """config.yaml and backend.yaml load and validate (the same rules as ``fxn config check``)."""
    from function_node.config.loader import load_backends, load_settings

    findings: list[Finding] = []
    try:
        ctx.settings = load_settings(ctx.home)
        findings.append(Finding.ok("config", f"{ctx.home / 'config.yaml'} is valid"))
    except ConfigError as exc:
        findings.append(_config_failure(exc, ctx))
    try:
        ctx.backends = load_backends(ctx.home)
        findings.append(Finding.ok("config", f"{ctx.home / 'backend.yaml'} is valid"))
    except ConfigError as exc:
        findings.append(_config_failure(exc, ctx))
    if ctx.settings is not None:
        findings.extend(_admission_findings(ctx.settings))
    if ctx.backends is not None:
        unset = ctx.backends.env_problems()
        if unset:
            findings.append(
                Finding.fail(
                    "config",
                    f"backend.yaml needs environment variable(s) {', '.join(unset)}, unset",
                    f"export {unset[0]}=... before `fxn start`",
                )
            )
    return findings


def _admission_findings(settings: Settings) -> list[Finding]:
    """Who the node would admit: anyone (bypassAuth) and no gateway at all are both unfit to serve."""
    if settings.registry.bypass_auth:
        return [
            Finding.fail(
                "config",
                "registry.bypassAuth is true: authentication is off and anyone can use this node's backends",
                "development only: set registry.bypassAuth: false in config.yaml before serving a network",
            )
        ]
    if settings.admits_no_gateway:
        return [
            Finding.fail(
                "config",
                "no gateway can be admitted: no registry.routerSmartContractAddress and no "
                "registry.static.gateways, so every request would get 401 unknown_caller",
                "set registry.routerSmartContractAddress (and rpcProvider), or list gateways in "
                "registry.static.gateways",
            )
        ]
    return []


def _config_failure(exc: ConfigError, ctx: DoctorContext) -> Finding:
    first = exc.problems[0]
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    hint = first.fix or f"run `fxn --home {ctx.home} config check` to see every problem"
    return Finding.fail("config", f"{first}{more}", hint)


async def check_key(ctx: DoctorContext) -> Sequence[Finding]:
    """The node key: present, private (0600), readable, and decryptable with the configured password."""
    from function_node.config.home import key_path
    from function_node.config.settings import Settings
    from function_node.errors import KeyFileError
    from function_node.keys import check_permissions, detect_format, read_key_json, resolve_password

    settings = ctx.settings or Settings()
    path = key_path(ctx.home, settings)
    if not path.exists():
        return [
            Finding.fail("key", f"no key file at {path}", "create one with `fxn init` or `fxn accounts new`")
        ]
    try:
        check_permissions(path)
    except KeyFileError as exc:
        return [Finding.fail("key", str(exc).split(";")[0], f"chmod 600 {path}")]
    try:
        document = read_key_json(path)
    except KeyFileError as exc:
        return [Finding.fail("key", str(exc), "restore the key file from a backup or import it again")]
    kind = detect_format(document)
    recorded = document.get("address")
    if kind == "plaintext":
        from function_node.keys import load_signer

        try:
            ctx.address = load_signer(path, None).address
        except KeyFileError as exc:
            return [Finding.fail("key", str(exc), "restore the key file from a backup")]
        return [
            Finding.warn(
                "key",
                f"{path} is a legacy plaintext key for {ctx.address}",
                "fine for development; for a real node import it into an encrypted keystore "
                "(`fxn accounts import`)",
            )
        ]
    if kind != "keystore":
        return [
            Finding.fail("key", f"{path} is neither a V3 keystore nor a plaintext key", "fxn accounts new")
        ]
    ctx.address = (
        f"0x{recorded}" if isinstance(recorded, str) and not recorded.startswith("0x") else str(recorded)
    )
    try:
        password = resolve_password(settings, ctx.home, prompt=False)
    except KeyFileError as exc:
        return [Finding.fail("key", str(exc), "fix node.keyPasswordFile in config.yaml")]
    if password is None:
        return [
            Finding.warn(
                "key",
                f"{path} is an encrypted keystore; no password source to test it with",
                "set FXN_KEY_PASSWORD or node.keyPasswordFile so `fxn start` can run unattended",
            )
        ]
    from function_node.keys import signer_from_keystore

    try:
        signer = await asyncio.to_thread(signer_from_keystore, document, password, source=str(path))
    except KeyFileError as exc:
        return [Finding.fail("key", str(exc), "check FXN_KEY_PASSWORD / node.keyPasswordFile")]
    ctx.address = signer.address
    return [Finding.ok("key", f"{path}: keystore for {signer.address}, mode 0600, password works")]


async def check_gpu(ctx: DoctorContext) -> Sequence[Finding]:
    """GPUs as IDENTITY reports them (NVML, nvidia-smi, rocm-smi, system_profiler); none is a warning."""
    from function_node.challenges.gpu_stats import collect_gpu_stats

    gpus = await asyncio.to_thread(collect_gpu_stats)
    ctx.notes[_NVIDIA_KEY] = any(str(g.get("source", "")) in _NVIDIA_SOURCES for g in gpus)
    if not gpus:
        return [
            Finding.warn(
                "gpu",
                "no GPU detected (NVML, nvidia-smi, rocm-smi)",
                "install the NVIDIA driver (nvidia-smi must work) or ROCm; without a GPU the matrix "
                "challenge runs on the CPU and scores low",
            )
        ]
    return [
        Finding.ok(
            "gpu",
            f"{g.get('name')} ({g.get('vram_total_mb')} MB, driver {g.get('driver_version')}, "
            f"via {g.get('source')})",
        )
        for g in gpus
    ]


def _prove_locally(backend: MatmulBackend, n: int, prover: str) -> tuple[bool, list[str], float]:
    """Compute with ``backend``, commit, prove 16 random rows and verify them as a scheduler would."""
    import secrets

    from function_node.challenges.matmul.commitment import MerkleTree
    from function_node.challenges.matmul.generate import MatrixKeys, parse_seed
    from function_node.challenges.matmul.verify import choose_rows, verify_proofs

    seed = parse_seed("0x" + secrets.token_hex(32))
    started = time.perf_counter()
    result = backend.compute(n, MatrixKeys.bind(seed, prover))
    digests = [int(d) for d in result.digests]
    tree = MerkleTree.build(digests)
    rows = choose_rows(n, 16)
    answer = {
        "proofs": [
            {"row": i, "digest": str(digests[i]), "siblings": ["0x" + s.hex() for s in tree.siblings(i)]}
            for i in rows
        ]
    }
    outcome = verify_proofs(seed, n, tree.root, rows, answer, prover=prover)
    return outcome.ok, outcome.failures, time.perf_counter() - started


async def check_matrix(ctx: DoctorContext) -> Sequence[Finding]:
    """A small matrix proof end to end on the CPU, and on the GPU when the gpu check found an NVIDIA one
    (torch is imported only then: it costs seconds and a CPU-only node does not need it)."""
    from function_node.challenges.matmul.compute import NumpyBackend

    n = ctx.matrix_size
    backends: list[tuple[str, MatmulBackend]] = [("CPU", NumpyBackend())]
    if ctx.notes.get(_NVIDIA_KEY):
        from function_node.challenges.matmul.compute import TorchBackend, cuda_available

        if await asyncio.to_thread(cuda_available):
            backends.append(("CUDA", TorchBackend("cuda")))
        else:
            return [
                Finding.fail(
                    "matrix",
                    "an NVIDIA GPU is present but torch cannot use it",
                    'install the CUDA build of torch (pip install "function-node[cuda]") matching the driver',
                )
            ]
    findings: list[Finding] = []
    for label, backend in backends:
        ok, failures, seconds = await asyncio.to_thread(
            _prove_locally, backend, n, ctx.address or _NO_ADDRESS
        )
        if ok:
            findings.append(
                Finding.ok(
                    "matrix", f"local n={n} proof ({label}) computed and verified in {seconds * 1000:.0f} ms"
                )
            )
        else:
            findings.append(
                Finding.fail(
                    "matrix",
                    f"a local n={n} proof ({label}) did not verify: {failures[0]}",
                    "the results are inexact: reinstall numpy (CPU) or torch (CUDA), and run "
                    "`fxn bench matmul` to compare the backends",
                )
            )
    return findings
