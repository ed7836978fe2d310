// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./EntryRegistry.sol";

/// @title Providers (Function Nodes) and the model each entry serves, with the live network's interface.
/// @notice An owner (a node's address) may hold several entries, one per model id; an entry's model id never
///         changes. An entry is active when it is not paused and approved: every entry is approved while
///         autoWhitelist is on (the default), else the admin approves entries one by one. The stored
///         ("State") activity follows every change made here; syncActiveStatus recomputes it on demand, as
///         the live network does when stakes change elsewhere. getActiveProvidersLive computes it afresh;
///         it is non-view on purpose (the live ABI declares it so), and the node reads it with eth_call.
contract ProviderRegistry is EntryRegistry {
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
    mapping(bytes32 => bool) private activeState;
    mapping(bytes32 => bool) private approved;
    mapping(address => bytes[]) private idsByOwner;
    mapping(uint256 => bytes[]) public providerIdsByModel;
    uint256 private activeCountState;
    bool public autoWhitelist = true;

    event ProviderRegistered(bytes id, uint256 indexed modelId, uint256 indexed epoch, string metadata);
    event ProviderRegisteredAndStaked(bytes id, uint256 indexed modelId, uint256 indexed epoch);
    event ProviderMetadataUpdated(bytes id);
    event ProviderPaused(bytes id);
    event ProviderUnpaused(bytes id);
    event ProviderStatusUpdated(bytes id, bool active);
    event LogError(bytes failedId, string message);

    // --- the live interface ---------------------------------------------------------------------------

    /// Register an entry owned by the caller.
    function register(bytes calldata _id, uint256 _modelId, string calldata metadata) external {
        _checkNew(msg.sender, _id, metadata);
        require(indexOf[keccak256(_id)] == 0, "id is already registered");
        _add(msg.sender, _id, _modelId, metadata);
    }

    /// Non-pure on purpose (solc's "can be restricted to pure" note is expected): nonpayable in the live ABI.
    function registerAndStake(bytes calldata, /* _id */ uint256, /* _modelId */ string calldata /* metadata */ )
        external
    {
        revert(NO_STAKING);
    }

    function updateMetadata(bytes calldata _id, string calldata metadata) external {
        Provider storage p = _entry(_id);
        _checkEditor(p.owner);
        _checkMetadata(metadata);
        p.metadata = metadata;
        emit ProviderMetadataUpdated(_id);
    }

    function pause(bytes calldata _id) external {
        Provider storage p = _entry(_id);
        _checkPauser(p.owner);
        if (p.paused) revert EnforcedPause();
        p.paused = true;
        emit ProviderPaused(_id);
        _sync(_id, p);
    }

    function unpause(bytes calldata _id) external {
        Provider storage p = _entry(_id);
        _checkPauser(p.owner);
        if (!p.paused) revert ExpectedPause();
        p.paused = false;
        emit ProviderUnpaused(_id);
        _sync(_id, p);
    }

    function syncActiveStatus(bytes calldata _id) external {
        _sync(_id, _entry(_id));
    }

    function syncActiveStatusByModel(uint256 _modelId) external {
        bytes[] storage ids = providerIdsByModel[_modelId];
        for (uint256 i = 0; i < ids.length; i++) {
            _sync(ids[i], entries[indexOf[keccak256(ids[i])] - 1]);
        }
    }

    function registered(bytes calldata _id) external view returns (bool) {
        return indexOf[keccak256(_id)] != 0;
    }

    function active(bytes calldata _id) external view returns (bool) {
        return activeState[keccak256(_id)];
    }

    function getProvider(bytes calldata _id) external view returns (Provider memory) {
        return _entry(_id);
    }

    function getProviderIdsByOwner(address owner) external view returns (bytes[] memory) {
        return idsByOwner[owner];
    }

    function getProviders() external view returns (Provider[] memory) {
        return entries;
    }

    function getProviderIds() external view returns (bytes[] memory out) {
        out = new bytes[](entries.length);
        for (uint256 i = 0; i < entries.length; i++) {
            out[i] = entries[i].id;
        }
    }

    /// Every entry that is active now, computed afresh.
    function getActiveProvidersLive() external returns (Provider[] memory out) {
        // Non-view on purpose (solc's "can be restricted to view" note is expected), like the live ABI.
        out = new Provider[](entries.length);
        uint256 n = 0;
        for (uint256 i = 0; i < entries.length; i++) {
            if (_isActive(entries[i])) out[n++] = entries[i];
        }
        // One pass: shorten the array to the entries found (a memory array's first word is its length).
        assembly {
            mstore(out, n)
        }
    }

    /// Every entry whose stored activity is true.
    function getActiveProvidersState() external view returns (Provider[] memory out) {
        out = new Provider[](activeCountState);
        uint256 n = 0;
        for (uint256 i = 0; i < entries.length; i++) {
            if (activeState[keccak256(entries[i].id)]) out[n++] = entries[i];
        }
    }

    function getActiveProviderCountState() external view returns (uint256) {
        return activeCountState;
    }

    // --- administration (devnet, onboarding, benchmarks) ----------------------------------------------

    /// Register an entry on behalf of ``owner``.
    function registerFor(address owner, bytes calldata _id, uint256 _modelId, string calldata metadata)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _checkNew(owner, _id, metadata);
        require(indexOf[keccak256(_id)] == 0, "id is already registered");
        _add(owner, _id, _modelId, metadata);
    }

    /// Register many entries in one transaction; an entry that cannot be registered is skipped with LogError.
    function registerBatchFor(
        address[] calldata owners,
        bytes[] calldata ids,
        uint256[] calldata modelIds,
        string[] calldata metadata
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint256 n = owners.length;
        require(ids.length == n && modelIds.length == n && metadata.length == n, "array lengths differ");
        for (uint256 i = 0; i < n; i++) {
            if (owners[i] == address(0) || ids[i].length == 0) {
                emit LogError(ids[i], "owner is the zero address or id is empty");
            } else if (bytes(metadata[i]).length > MAX_METADATA_LENGTH) {
                emit LogError(ids[i], "metadata is longer than MAX_METADATA_LENGTH");
            } else if (indexOf[keccak256(ids[i])] != 0) {
                emit LogError(ids[i], "id is already registered");
            } else {
                _add(owners[i], ids[i], modelIds[i], metadata[i]);
            }
        }
    }

    function setAutoWhitelist(bool value) external onlyRole(DEFAULT_ADMIN_ROLE) {
        autoWhitelist = value;
    }

    /// Approve (or withdraw approval of) one entry; matters while autoWhitelist is off.
    function setApproved(bytes calldata _id, bool value) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Provider storage p = _entry(_id);
        approved[keccak256(_id)] = value;
        _sync(_id, p);
    }

    // --- internals ------------------------------------------------------------------------------------

    function _add(address owner, bytes calldata id, uint256 modelId, string calldata metadata) private {
        bytes32 key = keccak256(id);
        entries.push(Provider(owner, id, modelId, block.timestamp, metadata, false));
        indexOf[key] = entries.length;
        idsByOwner[owner].push(id);
        providerIdsByModel[modelId].push(id);
        if (autoWhitelist) approved[key] = true;
        emit ProviderRegistered(id, modelId, NO_EPOCH, metadata);
        _sync(id, entries[entries.length - 1]);
    }

    function _isActive(Provider storage p) private view returns (bool) {
        return !p.paused && (autoWhitelist || approved[keccak256(p.id)]);
    }

    /// Store the entry's activity; say so when it changed.
    function _sync(bytes memory id, Provider storage p) private {
        bytes32 key = keccak256(id);
        bool isActive = _isActive(p);
        if (activeState[key] == isActive) return;
        activeState[key] = isActive;
        if (isActive) activeCountState++;
        else activeCountState--;
        emit ProviderStatusUpdated(id, isActive);
    }

    function _entry(bytes calldata id) private view returns (Provider storage) {
        uint256 index = indexOf[keccak256(id)];
        require(index != 0, "id is not registered");
        return entries[index - 1];
    }
}
