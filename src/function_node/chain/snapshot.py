"""The last good copy of each chain registry, kept in the home directory.

A node restarted while its RPC providers are down still knows its callers: at start each cached
registry loads ``<home>/registry-cache/<name>.json``. The snapshot keeps the time it was fetched, so
its age still counts toward ``maxStaleness``; and it records which network it came from (``source``,
e.g. the Router address), so a node pointed at another network never trusts an old snapshot.
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
_FORMAT: Final = 1


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
    source: str
    fetched_at: float  # unix seconds
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

    def load(self, name: str, source: str) -> Snapshot | None:
        """The snapshot of ``name`` if it exists, parses, and came from ``source``; else None."""
        try:
            payload = orjson.loads(self.path(name).read_bytes())
            if payload.get("format") != _FORMAT or payload.get("source") != source:
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
            return Snapshot(
                name=str(payload["name"]),
                source=source,
                fetched_at=float(payload["fetchedAt"]),
                entries=entries,
            )
        except (OSError, orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            return None
