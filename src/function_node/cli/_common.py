"""What every command shares: the home directory, exit codes, and one-sentence errors.

Keep imports here light: ``fxn --help`` must not import aiohttp, web3 or numpy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

import typer

if TYPE_CHECKING:
    from function_node.config.backends import BackendConfig
    from function_node.config.settings import Settings
    from function_node.signing import LocalSigner

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliState",
    "default_home",
    "expected_node_address",
    "fail",
    "orjson_text",
    "state",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1  # runtime failure
EXIT_USAGE: Final = 2  # bad usage or bad configuration
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::", "[::]"})


def default_home() -> Path:
    return Path(os.environ.get("FXN_HOME") or Path.home() / ".fxn").expanduser()


@dataclass(slots=True)
class CliState:
    home: Path
    debug: bool

    def settings(self) -> Settings:
        """config.yaml of the home directory, environment overrides applied; ConfigError if invalid."""
        from function_node.config.loader import load_settings

        return load_settings(self.home)

    def backends(self) -> BackendConfig:
        from function_node.config.loader import load_backends

        return load_backends(self.home)

    def settings_or_defaults(self) -> Settings:
        """config.yaml if the home has one, else the defaults (client commands work without a home)."""
        from function_node.config.home import config_path
        from function_node.config.settings import Settings

        return self.settings() if config_path(self.home).exists() else Settings()

    def node_url(self, settings: Settings) -> str:
        """The local node's base URL from ``node.listenAddress``/``listenPort`` (wildcards mean loopback)."""
        host = settings.node.listen_address
        host = "127.0.0.1" if host in _WILDCARD_HOSTS else host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{settings.node.listen_port}"

    def caller_signer(self, settings: Settings, key: Path | None) -> LocalSigner:
        """The key to sign requests with: ``key`` (keystore or plaintext) or, if None, the node key."""
        from function_node.errors import KeyFileError
        from function_node.keys import detect_format, load_signer, read_key_json, resolve_password

        try:
            if key is None:
                return self.signer(settings)
            encrypted = detect_format(read_key_json(key)) == "keystore"
            password = resolve_password(settings, self.home, prompt=True) if encrypted else None
            return load_signer(key, password)
        except KeyFileError as exc:
            fail(str(exc), EXIT_USAGE)

    def signer(self, settings: Settings | None = None) -> LocalSigner:
        """The node key named by ``node.keyFile``, decrypted with the configured password source."""
        from function_node.keys import load_node_signer

        return load_node_signer(self.home, settings if settings is not None else self.settings())


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        return CliState(home=default_home(), debug=False)
    return obj


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print one clear sentence to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def expected_node_address(
    cli: CliState, settings: Settings, node: str | None, node_address: str | None
) -> str | None:
    """The address a node's answers must be signed by, from what the operator trusts: ``--node-address``,
    else this home's own node key when ``--node`` is not given (the request goes to this home's node),
    else None (the caller learns it from ``/health`` on first use)."""
    from function_node.config.home import key_path
    from function_node.errors import KeyFileError, SigningError
    from function_node.keys import key_file_address
    from function_node.signing import normalize_address

    if node_address is not None:
        try:
            return normalize_address(node_address)
        except SigningError:
            fail(f"--node-address {node_address!r} is not 0x followed by 40 hex digits", EXIT_USAGE)
    if node is not None:
        return None
    try:
        return key_file_address(key_path(cli.home, settings))
    except KeyFileError:
        return None


def orjson_text(value: object) -> str:
    """``value`` as indented JSON, for printing an answer."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
