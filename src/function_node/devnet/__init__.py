"""The local Function Network: anvil, contracts, a development backend, nodes and a scheduler."""
