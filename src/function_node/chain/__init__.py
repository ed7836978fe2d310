"""The chain side of the registries: RPC client with failover, typed contract reads, cached registries.

``abi/`` and ``artifacts/`` hold the compiled contracts (built by ``function_node.devnet.build_contracts``,
committed and shipped in the wheel).
"""
