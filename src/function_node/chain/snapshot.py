"""The last good copy of each chain registry, kept in the home directory.

A node restarted while its RPC providers are down still knows its callers: at start each cached
registry loads ``<home>/registry-cache/<name>.json``. The snapshot keeps the time it was fetched, so
its age still counts toward ``maxStaleness``; and it records which network it came from (``source``,
the configured contract such as ``router=0x…``, and the chain id the RPC reported), so a node pointed
at another network never trusts an old snapshot (SPEC §8). Which snapshot to trust is decided by
:class:`function_node.chain.cached.CachedRegistry`; this module only reads and writes them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

__all__ = ["SNAPSHOT_DIR", "RegistryEntry", "Snapshot", "SnapshotStore"]

SNAPSHOT_DIR: Final = "registry-cache"
# 2: the chain id was added; a format-1 file (no chain id) is never trusted.
_FORMAT: Final = 2


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One active entry of a registry: its owner (lower-case 0x) and, for providers, id/model/metadata."""

    owner: str
    id: str = ""  # 0x hex of the entry id
    model_id: int | None = None
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str
    source: str  # the configured contract the entries were read through, e.g. "router=0x…"
    chain_id: int  # what the RPC reported when they were fetched; 0 = unknown
    fetched_at: float  # unix seconds, by the clock of the node that fetched them
    entries: tuple[RegistryEntry, ...]


class SnapshotStore:
    """Reads and atomically writes snapshots under ``<home>/registry-cache``."""

    def __init__(self, home: Path) -> None:
        self.directory = home / SNAPSHOT_DIR

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def save(self, snapshot: Snapshot) -> Path:
        """Write to a temporary file in the same directory, fsync, then rename over the old one."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = {
            "format": _FORMAT,
            "name": snapshot.name,
            "source": snapshot.source,
            "chainId": snapshot.chain_id,
            "fetchedAt": snapshot.fetched_at,
            "entries": snapshot.entries,  # orjson writes dataclasses natively (fast for 10k entries)
        }
        target = self.path(snapshot.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{snapshot.name}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps(payload))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def load(self, name: str) -> Snapshot | None:
        """The snapshot of ``name`` if it exists and parses in the current format; else None."""
        try:
            payload = orjson.loads(self.path(name).read_bytes())
            if payload.get("format") != _FORMAT:
                return None
            entries = tuple(
                RegistryEntry(
                    owner=str(e["owner"]).lower(),
                    id=str(e.get("id", "")),
                    model_id=None if e.get("model_id") is None else int(e["model_id"]),
                    metadata=str(e.get("metadata", "")),
                )
                for e in payload["entries"]
            )
            chain_id = payload["chainId"]
            if isinstance(chain_id, bool) or not isinstance(chain_id, int):
                return None
            return Snapshot(
                name=str(payload["name"]),
                source=str(payload["source"]),
                chain_id=chain_id,
                fetched_at=float(payload["fetchedAt"]),
                entries=entries,
            )
        except (OSError, orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            return None
