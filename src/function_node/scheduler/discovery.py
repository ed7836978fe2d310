"""Where the reference scheduler finds nodes: scheduler.yaml's list, and the provider registry on chain.

Every active provider entry whose metadata names a URL (``{"url": ...}``, what ``fxn provider register``
publishes) is a node to probe, expected to prove the entry's owner address in IDENTITY (SPEC §9). Several
ids of one node (one per model id) are one target.
"""

from __future__ import annotations

from collections.abc import Sequence

from function_node.chain.metadata import node_url_from_metadata
from function_node.logs import get_logger
from function_node.scheduler.config import NodeTarget, SchedulerConfig
from function_node.scheduler.runner import NodeSource

__all__ = ["registry_node_source"]


def registry_node_source(config: SchedulerConfig) -> NodeSource:
    """Nodes from scheduler.yaml plus every active provider whose metadata names a node URL.

    A provider registry that cannot be read this round is logged and the configured nodes are probed
    alone: an RPC outage must not stop the scheduler from measuring the nodes it already knows.
    """
    log = get_logger("fxn.scheduler")

    async def nodes() -> Sequence[NodeTarget]:
        targets = {t.url: t for t in config.nodes}
        if config.provider_registry.enabled:
            from function_node.chain.client import ChainClient
            from function_node.chain.contracts import NetworkReader, ProviderRecord
            from function_node.errors import ChainError

            source = config.provider_registry
            providers: list[ProviderRecord] = []
            try:
                async with ChainClient(source.rpc_provider) as chain:
                    reader = NetworkReader(chain, source.router_smart_contract_address)
                    providers = await reader.active_providers()
            except ChainError as exc:
                log.warning("scheduler_registry_unavailable", error=str(exc))
            for provider in providers:
                if provider.paused:
                    continue
                url = node_url_from_metadata(provider.metadata)
                if url is not None and url not in targets:
                    targets[url] = NodeTarget(url=url, address=provider.owner)
        return list(targets.values())

    return nodes
