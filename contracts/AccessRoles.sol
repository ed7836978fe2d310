// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title Role-based permissions under the names the live network's registries use.
/// @notice Roles are bytes32 ids; every role is administered by DEFAULT_ADMIN_ROLE, whose holders grant and
///         revoke roles. Written for this project: only the public names, events and errors follow the
///         AccessControl interface the live registries expose.
abstract contract AccessRoles {
    bytes32 public constant DEFAULT_ADMIN_ROLE = 0x00;

    mapping(bytes32 => mapping(address => bool)) private members;

    event RoleGranted(bytes32 indexed role, address indexed account, address indexed sender);
    event RoleRevoked(bytes32 indexed role, address indexed account, address indexed sender);

    error AccessControlUnauthorizedAccount(address account, bytes32 neededRole);
    error AccessControlBadConfirmation();

    modifier onlyRole(bytes32 role) {
        if (!members[role][msg.sender]) revert AccessControlUnauthorizedAccount(msg.sender, role);
        _;
    }

    function hasRole(bytes32 role, address account) public view returns (bool) {
        return members[role][account];
    }

    function getRoleAdmin(bytes32) external pure returns (bytes32) {
        return DEFAULT_ADMIN_ROLE;
    }

    function grantRole(bytes32 role, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _grantRole(role, account);
    }

    function revokeRole(bytes32 role, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _revokeRole(role, account);
    }

    /// An account gives up one of its own roles; repeating its address guards against a slip of the hand.
    function renounceRole(bytes32 role, address callerConfirmation) external {
        if (callerConfirmation != msg.sender) revert AccessControlBadConfirmation();
        _revokeRole(role, msg.sender);
    }

    function _grantRole(bytes32 role, address account) internal {
        if (members[role][account]) return;
        members[role][account] = true;
        emit RoleGranted(role, account, msg.sender);
    }

    function _revokeRole(bytes32 role, address account) internal {
        if (!members[role][account]) return;
        members[role][account] = false;
        emit RoleRevoked(role, account, msg.sender);
    }
}
