// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./AccessRoles.sol";

/// @title Schedulers allowed to send challenges (the project's own; the devnet uses it).
/// @notice The deployer holds DEFAULT_ADMIN_ROLE: it registers and unpauses schedulers; a scheduler may
///         also pause itself.
contract SchedulerRegistry is AccessRoles {
    address[] private schedulers;
    // scheduler => index + 1 (0 = absent)
    mapping(address => uint256) private indexOf;
    mapping(address => bool) public paused;
    uint256 public activeCount;

    event SchedulerRegistered(address indexed scheduler);
    event SchedulerPaused(address indexed scheduler, bool paused);

    error AlreadyRegistered(address scheduler);
    error UnknownScheduler(address scheduler);

    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    function registerScheduler(address scheduler) external onlyRole(DEFAULT_ADMIN_ROLE) {
        require(scheduler != address(0), "scheduler is the zero address");
        if (indexOf[scheduler] != 0) revert AlreadyRegistered(scheduler);
        schedulers.push(scheduler);
        indexOf[scheduler] = schedulers.length;
        activeCount++;
        emit SchedulerRegistered(scheduler);
    }

    /// The admin, or a scheduler pausing itself.
    function pauseScheduler(address scheduler) external {
        if (msg.sender != scheduler && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, DEFAULT_ADMIN_ROLE);
        }
        _setPaused(scheduler, true);
    }

    function unpauseScheduler(address scheduler) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setPaused(scheduler, false);
    }

    function isActiveScheduler(address scheduler) external view returns (bool) {
        return indexOf[scheduler] != 0 && !paused[scheduler];
    }

    function getActiveSchedulers() external view returns (address[] memory out) {
        out = new address[](activeCount);
        uint256 n = 0;
        for (uint256 i = 0; i < schedulers.length; i++) {
            if (!paused[schedulers[i]]) out[n++] = schedulers[i];
        }
    }

    function _setPaused(address scheduler, bool value) private {
        if (indexOf[scheduler] == 0) revert UnknownScheduler(scheduler);
        if (paused[scheduler] == value) return;
        paused[scheduler] = value;
        if (value) activeCount--;
        else activeCount++;
        emit SchedulerPaused(scheduler, value);
    }
}
