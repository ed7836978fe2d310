// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Administered.sol";

/// @title Providers (Function Nodes) and the model each entry serves.
/// @notice An owner (a node's address) may hold several entries, one per model id.
contract ProviderRegistry is Administered {
    struct Provider {
        address owner;
        bytes id;
        uint256 modelId;
        uint256 registeredAt;
        string metadata;
        bool paused;
    }

    Provider[] private entries;
    // keccak256(id) => index + 1 (0 = absent)
    mapping(bytes32 => uint256) private indexOf;
    mapping(address => bytes[]) private idsByOwner;
    uint256 public activeCount;

    event ProviderRegistered(address indexed owner, bytes id, uint256 modelId, string metadata);
    event ProviderPaused(bytes id, bool paused);
    event ProviderUpdated(bytes id, uint256 modelId, string metadata);

    error AlreadyRegistered(bytes id);
    error UnknownProvider(bytes id);

    /// Register a provider entry owned by the caller.
    function registerProvider(bytes calldata id, uint256 modelId, string calldata metadata) external {
        _register(msg.sender, id, modelId, metadata);
    }

    /// Register on behalf of an owner (admin only: devnet and onboarding).
    function registerProviderFor(address owner, bytes calldata id, uint256 modelId, string calldata metadata)
        external
        onlyAdmin
    {
        _register(owner, id, modelId, metadata);
    }

    /// Register many providers in one transaction (admin only: devnet and benchmarks).
    function registerProvidersBatch(
        address[] calldata owners,
        bytes[] calldata ids,
        uint256[] calldata modelIds,
        string[] calldata metadata
    ) external onlyAdmin {
        uint256 n = owners.length;
        if (ids.length != n || modelIds.length != n || metadata.length != n) revert BadInput();
        for (uint256 i = 0; i < n; i++) {
            _register(owners[i], ids[i], modelIds[i], metadata[i]);
        }
    }

    function pauseProvider(bytes calldata id) external {
        _setPaused(id, true);
    }

    function unpauseProvider(bytes calldata id) external {
        _setPaused(id, false);
    }

    function updateProvider(bytes calldata id, uint256 modelId, string calldata metadata) external {
        Provider storage p = _entry(id);
        if (msg.sender != p.owner) revert NotAuthorized();
        p.modelId = modelId;
        p.metadata = metadata;
        emit ProviderUpdated(id, modelId, metadata);
    }

    function getProvider(bytes calldata id) external view returns (Provider memory) {
        return _entry(id);
    }

    function getProviderIdsByOwner(address owner) external view returns (bytes[] memory) {
        return idsByOwner[owner];
    }

    function providerCount() external view returns (uint256) {
        return entries.length;
    }

    /// Every provider entry that is not paused.
    function getActiveProvidersLive() external returns (Provider[] memory out) {
        // Non-view on purpose (solc's "can be restricted to view" note is expected): the live network's
        // ABI declares it so, and the node reads it with eth_call either way.
        out = new Provider[](activeCount);
        uint256 n = 0;
        for (uint256 i = 0; i < entries.length; i++) {
            if (!entries[i].paused) {
                out[n] = entries[i];
                n++;
            }
        }
    }

    function _register(address owner, bytes calldata id, uint256 modelId, string calldata metadata) private {
        if (owner == address(0) || id.length == 0) revert BadInput();
        bytes32 key = keccak256(id);
        if (indexOf[key] != 0) revert AlreadyRegistered(id);
        entries.push(Provider(owner, id, modelId, block.timestamp, metadata, false));
        indexOf[key] = entries.length;
        idsByOwner[owner].push(id);
        activeCount++;
        emit ProviderRegistered(owner, id, modelId, metadata);
    }

    function _setPaused(bytes calldata id, bool paused) private {
        Provider storage p = _entry(id);
        if (msg.sender != p.owner && msg.sender != admin) revert NotAuthorized();
        if (p.paused == paused) return;
        p.paused = paused;
        if (paused) activeCount--;
        else activeCount++;
        emit ProviderPaused(id, paused);
    }

    function _entry(bytes calldata id) private view returns (Provider storage) {
        uint256 index = indexOf[keccak256(id)];
        if (index == 0) revert UnknownProvider(id);
        return entries[index - 1];
    }
}
