// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title One administrator account, set at deployment and transferable.
/// @notice The registries' admin registers entries on others' behalf (devnet, onboarding) and settles disputes.
abstract contract Administered {
    address public admin;

    event AdminChanged(address indexed admin);

    error NotAuthorized();
    error BadInput();

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAuthorized();
        _;
    }

    constructor() {
        admin = msg.sender;
    }

    function setAdmin(address newAdmin) external onlyAdmin {
        if (newAdmin == address(0)) revert BadInput();
        admin = newAdmin;
        emit AdminChanged(newAdmin);
    }
}
