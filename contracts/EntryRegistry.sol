// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./AccessRoles.sol";

/// @title What the gateway and provider registries share: roles, limits, the live ABI's errors.
/// @notice The deployer holds DEFAULT_ADMIN_ROLE and PAUSER_ROLE. An entry's owner may pause, unpause and
///         update it; a PAUSER_ROLE holder may pause and unpause any entry; a DEFAULT_ADMIN_ROLE holder may
///         also update any entry's metadata (disputes, onboarding).
abstract contract EntryRegistry is AccessRoles {
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    uint256 public constant MAX_METADATA_LENGTH = 1024;

    // Staking, epochs and rewards live in contracts whose interfaces are not published (SPEC §8.1); the
    // devnet has none, so its events carry epoch 0 and its registerAndStake always reverts.
    uint256 internal constant NO_EPOCH = 0;
    string internal constant NO_STAKING = "staking is not available on the devnet; use register";

    error EnforcedPause();
    error ExpectedPause();
    // Declared for parity with the live ABI, whose registries guard their calls into the staking
    // contracts; these registries make no external calls, so nothing here can re-enter.
    error ReentrancyGuardReentrantCall();

    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(PAUSER_ROLE, msg.sender);
    }

    function _checkNew(address owner, bytes calldata id, string calldata metadata) internal pure {
        require(owner != address(0), "owner is the zero address");
        require(id.length > 0, "id is empty");
        _checkMetadata(metadata);
    }

    function _checkMetadata(string calldata metadata) internal pure {
        require(bytes(metadata).length <= MAX_METADATA_LENGTH, "metadata is longer than MAX_METADATA_LENGTH");
    }

    /// Only the entry's owner or a PAUSER_ROLE holder may pause or unpause it.
    function _checkPauser(address owner) internal view {
        if (msg.sender != owner && !hasRole(PAUSER_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, PAUSER_ROLE);
        }
    }

    /// Only the entry's owner or a DEFAULT_ADMIN_ROLE holder may change its metadata.
    function _checkEditor(address owner) internal view {
        if (msg.sender != owner && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, DEFAULT_ADMIN_ROLE);
        }
    }
}
