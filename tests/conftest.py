"""Shared fixtures. Each area keeps its fixtures in tests/fixtures/<area>.py, listed here."""

pytest_plugins = [
    "tests.fixtures.common",
]
