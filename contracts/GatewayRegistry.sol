// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./EntryRegistry.sol";

/// @title Gateways allowed to send signed requests to Function Nodes, with the live network's interface.
/// @notice Entries are keyed by id; an owner may hold several. A gateway is active while it is not paused.
///         The node reads getActiveGatewaysLive() with eth_call (it is non-view, like the live ABI).
contract GatewayRegistry is EntryRegistry {
    struct Gateway {
        address owner;
        bytes id;
        uint256 registeredAt;
        string metadata;
        bool paused;
    }

    Gateway[] private entries;
    // keccak256(id) => index + 1 (0 = absent)
    mapping(bytes32 => uint256) private indexOf;
    mapping(address => bytes[]) private idsByOwner;
    uint256 private activeCount;

    event GatewayRegistered(bytes id, uint256 indexed epoch, string metadata);
    event GatewayMetadataUpdated(bytes id);
    event GatewayPaused(bytes id);
    event GatewayUnpaused(bytes id);

    // --- the live interface ---------------------------------------------------------------------------

    /// Register a gateway owned by the caller.
    function register(bytes calldata _id, string calldata metadata) external {
        _register(msg.sender, _id, metadata);
    }

    /// Non-pure on purpose (solc's "can be restricted to pure" note is expected): nonpayable in the live ABI.
    function registerAndStake(bytes calldata, /* _id */ string calldata, /* metadata */ uint256 /* amount */ )
        external
    {
        revert(NO_STAKING);
    }

    function updateMetadata(bytes calldata _id, string calldata metadata) external {
        Gateway storage g = _entry(_id);
        _checkEditor(g.owner);
        _checkMetadata(metadata);
        g.metadata = metadata;
        emit GatewayMetadataUpdated(_id);
    }

    function pause(bytes calldata _id) external {
        Gateway storage g = _entry(_id);
        _checkPauser(g.owner);
        if (g.paused) revert EnforcedPause();
        g.paused = true;
        activeCount--;
        emit GatewayPaused(_id);
    }

    function unpause(bytes calldata _id) external {
        Gateway storage g = _entry(_id);
        _checkPauser(g.owner);
        if (!g.paused) revert ExpectedPause();
        g.paused = false;
        activeCount++;
        emit GatewayUnpaused(_id);
    }

    function registered(bytes calldata _id) external view returns (bool) {
        return indexOf[keccak256(_id)] != 0;
    }

    function active(bytes calldata _id) external view returns (bool) {
        uint256 index = indexOf[keccak256(_id)];
        return index != 0 && !entries[index - 1].paused;
    }

    function getGateway(bytes calldata _id) external view returns (Gateway memory) {
        return _entry(_id);
    }

    function getGatewayIdsByOwner(address owner) external view returns (bytes[] memory) {
        return idsByOwner[owner];
    }

    /// Every gateway that is not paused.
    function getActiveGatewaysLive() external returns (Gateway[] memory out) {
        // Non-view on purpose (solc's "can be restricted to view" note is expected), like the live ABI.
        out = new Gateway[](activeCount);
        uint256 n = 0;
        for (uint256 i = 0; i < entries.length; i++) {
            if (!entries[i].paused) out[n++] = entries[i];
        }
    }

    // --- administration (devnet, onboarding, benchmarks) ----------------------------------------------

    /// Register a gateway on behalf of ``owner``.
    function registerFor(address owner, bytes calldata _id, string calldata metadata)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _register(owner, _id, metadata);
    }

    /// Register many gateways in one transaction (all or none).
    function registerBatchFor(address[] calldata owners, bytes[] calldata ids, string[] calldata metadata)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        require(ids.length == owners.length && metadata.length == owners.length, "array lengths differ");
        for (uint256 i = 0; i < owners.length; i++) {
            _register(owners[i], ids[i], metadata[i]);
        }
    }

    // --- internals ------------------------------------------------------------------------------------

    function _register(address owner, bytes calldata id, string calldata metadata) private {
        _checkNew(owner, id, metadata);
        bytes32 key = keccak256(id);
        require(indexOf[key] == 0, "id is already registered");
        entries.push(Gateway(owner, id, block.timestamp, metadata, false));
        indexOf[key] = entries.length;
        idsByOwner[owner].push(id);
        activeCount++;
        emit GatewayRegistered(id, NO_EPOCH, metadata);
    }

    function _entry(bytes calldata id) private view returns (Gateway storage) {
        uint256 index = indexOf[keccak256(id)];
        require(index != 0, "id is not registered");
        return entries[index - 1];
    }
}
