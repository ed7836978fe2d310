"""``fxn doctor``: everything a node needs, checked one by one, each finding with a fix-it hint."""

from __future__ import annotations

from function_node.doctor.backends import check_backends
from function_node.doctor.framework import Check, DoctorContext, Finding, Status, exit_code, run_checks
from function_node.doctor.local import check_config, check_gpu, check_key, check_matrix
from function_node.doctor.remote import (
    check_clock,
    check_nonce_store,
    check_registration,
    check_registries,
    check_rpc,
)

__all__ = ["ALL_CHECKS", "DoctorContext", "Finding", "Status", "exit_code", "run_checks"]

# In dependency order: config feeds key (keyFile) and the remote checks; rpc feeds clock and registries.
ALL_CHECKS: tuple[tuple[str, Check], ...] = (
    ("config", check_config),
    ("key", check_key),
    ("nonces", check_nonce_store),
    ("rpc", check_rpc),
    ("clock", check_clock),
    ("registries", check_registries),
    ("registration", check_registration),
    ("backends", check_backends),
    ("gpu", check_gpu),
    ("matrix", check_matrix),
)
