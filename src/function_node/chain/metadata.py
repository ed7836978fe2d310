"""Provider metadata: the JSON string a provider entry carries on chain, and the node URL inside it.

``fxn provider register`` publishes ``{"url": <node.publicUrl>, "version": <package version>}`` by default;
the reference scheduler reads ``url`` back to find the node (SPEC §8.1, §9). Light on purpose: the
scheduler's config imports it, and nothing here needs web3.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from function_node.errors import UsageError

__all__ = [
    "default_metadata",
    "metadata_from_options",
    "metadata_value",
    "node_url_from_metadata",
]


def default_metadata(url: str) -> str:
    """The metadata a node publishes by default: its URL and the package version, compact JSON."""
    from function_node import __version__

    return json.dumps({"url": url, "version": __version__}, separators=(",", ":"))


def metadata_from_options(metadata: str | None, url: str | None, public_url: str) -> str:
    """The metadata to publish: ``--metadata`` as given, else built from ``--url``, else ``node.publicUrl``.

    UsageError (one sentence naming the flag or key and the fix) when none is usable.
    """
    from function_node.config.settings import public_url as checked_url

    if metadata is not None and url is not None:
        raise UsageError("--metadata and --url are alternatives; pass one of them")
    if metadata is not None:
        text = metadata.strip()
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise UsageError(
                f"--metadata is not valid JSON ({exc}); pass an object such as "
                '\'{"url": "https://node.example.com:8080"}\''
            ) from None
        if not isinstance(value, dict):
            raise UsageError(
                f"--metadata must be a JSON object, not {type(value).__name__}; pass an object such as "
                '\'{"url": "https://node.example.com:8080"}\''
            )
        return text
    if url is not None:
        try:
            return default_metadata(checked_url(url, "--url"))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not public_url:
        raise UsageError(
            "node.publicUrl is empty in config.yaml; set it to the URL gateways and schedulers reach this "
            "node at (e.g. https://node.example.com:8080), or pass --url or --metadata"
        )
    return default_metadata(public_url)


def metadata_value(metadata: str) -> Any:
    """The metadata as parsed JSON when it parses, else the string itself."""
    try:
        return json.loads(metadata)
    except ValueError:
        return metadata


def node_url_from_metadata(metadata: str) -> str | None:
    """The node URL a provider published in its on-chain metadata, or None.

    Accepted forms: a JSON object with ``url`` (or ``endpoint``), or a bare ``http(s)://`` URL.
    """
    text = metadata.strip()
    candidate: object = text
    if text.startswith("{"):
        data = metadata_value(text)
        candidate = data.get("url") or data.get("endpoint") if isinstance(data, dict) else None
    if not isinstance(candidate, str):
        return None
    parts = urlsplit(candidate.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return candidate.strip().rstrip("/")
