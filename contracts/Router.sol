// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title The network's entry point: where each registry lives.
/// @notice The live network's Router has gatewayRegistry() and providerRegistry(); schedulerRegistry()
///         is the project's addition for the devnet (nodes treat a Router without it as "no registry").
contract Router {
    address public admin;
    address public gatewayRegistry;
    address public providerRegistry;
    address public schedulerRegistry;

    event RegistriesChanged(address gatewayRegistry, address providerRegistry, address schedulerRegistry);
    event AdminChanged(address indexed admin);

    error NotAuthorized();
    error BadInput();

    constructor(address gateways, address providers, address schedulers) {
        admin = msg.sender;
        _set(gateways, providers, schedulers);
    }

    function setAdmin(address newAdmin) external {
        if (msg.sender != admin) revert NotAuthorized();
        if (newAdmin == address(0)) revert BadInput();
        admin = newAdmin;
        emit AdminChanged(newAdmin);
    }

    function setRegistries(address gateways, address providers, address schedulers) external {
        if (msg.sender != admin) revert NotAuthorized();
        _set(gateways, providers, schedulers);
    }

    function _set(address gateways, address providers, address schedulers) private {
        if (gateways == address(0) || providers == address(0)) revert BadInput();
        gatewayRegistry = gateways;
        providerRegistry = providers;
        schedulerRegistry = schedulers;
        emit RegistriesChanged(gateways, providers, schedulers);
    }
}
