"""IDENTITY (SPEC §7.1): who the node is, where it says it is, and what hardware it reports.

The signature binds address, IP address and the scheduler's nonce, so an answer cannot be replayed for
another nonce. GPU figures are self-reported evidence; the matrix proof is the check.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from function_node.challenges.base import ChallengeContext
from function_node.challenges.gpu_stats import collect_gpu_stats, export_gpu_metrics
from function_node.errors import ChallengeError
from function_node.protocol import identity_message

__all__ = ["IdentityChallenge", "discover_ip", "system_info"]

MAX_NONCE_CHARS: Final = 256
# A documentation address (RFC 5737): connecting a UDP socket only asks the kernel for a route and the
# source address it would use; no packet is sent, and nothing on the internet is contacted.
_ROUTE_PROBE: Final = ("192.0.2.1", 9)
_DISCOVERY_TIMEOUT_S: Final = 1.0
_GIB: Final = float(1 << 30)


def discover_ip(target: tuple[str, int] = _ROUTE_PROBE) -> str:
    """The source address of the default route, or "" if there is none."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_DISCOVERY_TIMEOUT_S)
            sock.connect(target)
            address = str(sock.getsockname()[0])
    except OSError:
        return ""
    return "" if address.startswith("0.") else address


def system_info() -> dict[str, Any]:
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / _GIB, 2)
    except (ValueError, OSError, AttributeError):
        memory = None
    return {
        "os": platform.system(),
        "osRelease": platform.release(),
        "machine": platform.machine(),
        "cpuCount": os.cpu_count(),
        "memoryGB": memory,
        "python": sys.version.split()[0],
        "ldPreload": bool(os.environ.get("LD_PRELOAD") or os.environ.get("DYLD_INSERT_LIBRARIES")),
    }


@dataclass(slots=True)
class IdentityChallenge:
    """Answers IDENTITY; ``gpu_stats`` and ``discover`` are injectable so tests control the machine."""

    gpu_stats: Callable[[], list[dict[str, Any]]] = field(default=collect_gpu_stats)
    discover: Callable[[], str] = field(default=discover_ip)
    type: ClassVar[str] = "IDENTITY"

    async def run(self, payload: Any, ctx: ChallengeContext) -> dict[str, Any]:
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise ChallengeError(
                'IDENTITY payload must be {} or {"nonce": "<string>"}', code="invalid_payload"
            )
        nonce = payload.get("nonce")
        if nonce is None:
            nonce = secrets.token_hex(16)
        if not isinstance(nonce, str) or not nonce or len(nonce) > MAX_NONCE_CHARS:
            raise ChallengeError(
                f"nonce must be a string of 1 to {MAX_NONCE_CHARS} characters", code="invalid_nonce"
            )
        ip_address = ctx.settings.node.public_address or await asyncio.to_thread(self.discover)
        gpus = await asyncio.to_thread(self.gpu_stats)
        export_gpu_metrics(ctx.metrics, gpus)
        address = ctx.signer.address
        return {
            "address": address,
            "publicKey": address,
            "publicKeyHex": ctx.signer.public_key_hex,
            "ipAddress": ip_address,
            "nonce": nonce,
            "signature": ctx.signer.sign(identity_message(address, ip_address, nonce)),
            "gpuStats": gpus,
            "system": system_info(),
            "version": ctx.version,
        }

    async def close(self) -> None:
        return None
