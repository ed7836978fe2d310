// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Administered.sol";

/// @title Gateways allowed to send signed requests to Function Nodes.
/// @notice Entries are keyed by id; an owner may hold several. The node reads getActiveGatewaysLive()
///         with eth_call (it is non-view, like the live network's ABI).
contract GatewayRegistry is Administered {
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
    uint256 public activeCount;

    event GatewayRegistered(address indexed owner, bytes id, string metadata);
    event GatewayPaused(bytes id, bool paused);
    event GatewayUpdated(bytes id, string metadata);

    error AlreadyRegistered(bytes id);
    error UnknownGateway(bytes id);

    /// Register a gateway owned by the caller.
    function registerGateway(bytes calldata id, string calldata metadata) external {
        _register(msg.sender, id, metadata);
    }

    /// Register a gateway on behalf of an owner (admin only: devnet and onboarding).
    function registerGatewayFor(address owner, bytes calldata id, string calldata metadata) external onlyAdmin {
        _register(owner, id, metadata);
    }

    /// Register many gateways in one transaction (admin only: devnet and benchmarks).
    function registerGatewaysBatch(address[] calldata owners, bytes[] calldata ids, string[] calldata metadata)
        external
        onlyAdmin
    {
        if (owners.length != ids.length || owners.length != metadata.length) revert BadInput();
        for (uint256 i = 0; i < owners.length; i++) {
            _register(owners[i], ids[i], metadata[i]);
        }
    }

    function pauseGateway(bytes calldata id) external {
        _setPaused(id, true);
    }

    function unpauseGateway(bytes calldata id) external {
        _setPaused(id, false);
    }

    function updateGateway(bytes calldata id, string calldata metadata) external {
        Gateway storage g = _entry(id);
        if (msg.sender != g.owner) revert NotAuthorized();
        g.metadata = metadata;
        emit GatewayUpdated(id, metadata);
    }

    function getGateway(bytes calldata id) external view returns (Gateway memory) {
        return _entry(id);
    }

    function gatewayCount() external view returns (uint256) {
        return entries.length;
    }

    /// Every gateway that is not paused.
    function getActiveGatewaysLive() external returns (Gateway[] memory out) {
        // Non-view on purpose (solc's "can be restricted to view" note is expected): the live network's
        // ABI declares it so, and the node reads it with eth_call either way.
        out = new Gateway[](activeCount);
        uint256 n = 0;
        for (uint256 i = 0; i < entries.length; i++) {
            if (!entries[i].paused) {
                out[n] = entries[i];
                n++;
            }
        }
    }

    function _register(address owner, bytes calldata id, string calldata metadata) private {
        if (owner == address(0) || id.length == 0) revert BadInput();
        bytes32 key = keccak256(id);
        if (indexOf[key] != 0) revert AlreadyRegistered(id);
        entries.push(Gateway(owner, id, block.timestamp, metadata, false));
        indexOf[key] = entries.length;
        activeCount++;
        emit GatewayRegistered(owner, id, metadata);
    }

    function _setPaused(bytes calldata id, bool paused) private {
        Gateway storage g = _entry(id);
        if (msg.sender != g.owner && msg.sender != admin) revert NotAuthorized();
        if (g.paused == paused) return;
        g.paused = paused;
        if (paused) activeCount--;
        else activeCount++;
        emit GatewayPaused(id, paused);
    }

    function _entry(bytes calldata id) private view returns (Gateway storage) {
        uint256 index = indexOf[keccak256(id)];
        if (index == 0) revert UnknownGateway(id);
        return entries[index - 1];
    }
}
