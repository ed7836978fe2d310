"""Scheduler challenges (SPEC §7): one module per type behind the Challenge protocol."""
