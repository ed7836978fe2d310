"""Shared fixtures. Each area keeps its fixtures in tests/fixtures/<area>.py, listed here."""

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.challenges",
    "tests.fixtures.foundation",
    "tests.fixtures.auth",
    "tests.fixtures.redis",
    "tests.fixtures.backend",
    "tests.fixtures.node",
    "tests.fixtures.anvil",
    "tests.fixtures.logs",
]
