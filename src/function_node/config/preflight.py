"""Everything ``fxn start`` checks before it serves, in one place, so ``fxn config check`` runs exactly it.

SPEC §2: ``config check`` passing means ``fxn start`` will not exit 2 on configuration. Both commands
call :func:`check_start`, which reads config.yaml (environment overrides included) and backend.yaml with
every rule of their models, applies ``fxn start``'s flags, and checks the node's key file as far as it
can without decrypting it: present (a start never creates an identity by itself), private (0600), a key
file at all, and, for a keystore, a password source when there is no terminal to ask on. A wrong
password is found only by decrypting, at start (exit 1).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from function_node.config.backends import BackendConfig
from function_node.config.home import config_path, key_path
from function_node.config.loader import load_backends, load_settings
from function_node.config.settings import Settings
from function_node.errors import ConfigError, ConfigProblem, KeyFileError

__all__ = ["StartConfig", "check_start", "init_hint"]


@dataclass(frozen=True, slots=True)
class StartConfig:
    """What ``fxn start`` runs with: both files, validated, the flags applied, and the key file."""

    settings: Settings
    backends: BackendConfig
    key_file: Path


def init_hint(home: Path) -> str:
    return (
        f"run `fxn --home {home} init` to create it, or `fxn start --init`; if the node's home is "
        "elsewhere, pass --home DIR or set FXN_HOME"
    )


def check_start(
    home: Path,
    *,
    workers: int | None = None,
    port: int | None = None,
    environ: Mapping[str, str] | None = None,
    interactive: bool | None = None,
) -> StartConfig:
    """The configuration ``fxn start`` would serve with; ConfigError listing every problem otherwise.

    ``interactive``: whether a password prompt is possible (default: stdin is a terminal).
    """
    if not config_path(home).exists() and not key_path(home, Settings()).exists():
        # A mistyped --home, or a volume that is not mounted: one clear sentence, not three.
        raise ConfigError(
            ConfigProblem(
                str(home), None, "is not a node home (no config.yaml, no key file)", init_hint(home)
            )
        )
    problems: list[ConfigProblem] = []
    settings: Settings | None = None
    try:
        settings = _with_flags(load_settings(home, environ), workers, port)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if settings is not None:
        problems.extend(_flag_problems(settings, workers))
        problems.extend(_key_problems(home, settings, environ, interactive))
        problems.extend(_tracing_problems(settings))
    backends: BackendConfig | None = None
    try:
        backends = load_backends(home, environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems or settings is None or backends is None:
        raise ConfigError(problems)
    return StartConfig(settings=settings, backends=backends, key_file=key_path(home, settings))


def _with_flags(settings: Settings, workers: int | None, port: int | None) -> Settings:
    update: dict[str, int] = {}
    if workers is not None:
        update["workers"] = workers
    if port is not None:
        update["listen_port"] = port
    if not update:
        return settings
    return settings.model_copy(update={"node": settings.node.model_copy(update=update)})


def _flag_problems(settings: Settings, workers: int | None) -> list[ConfigProblem]:
    # config.yaml's own node.workers is checked with the file (a Settings rule); a --workers flag
    # bypasses that validation, so the same rule is applied to it here.
    if workers is not None and workers > 1 and settings.nonce_cache.backend != "redis":
        return [
            ConfigProblem(
                f"--workers {workers}",
                None,
                "needs nonceCache.backend: redis in config.yaml, so that every worker refuses a replayed "
                "request",
                "set nonceCache.backend: redis (and nonceCache.redisUrl), or run one worker",
            )
        ]
    return []


def _tracing_problems(settings: Settings) -> list[ConfigProblem]:
    from function_node.node.tracing import check_tracing

    try:
        check_tracing(settings.tracing)
    except ConfigError as exc:
        return exc.problems
    return []


def _key_problems(
    home: Path, settings: Settings, environ: Mapping[str, str] | None, interactive: bool | None
) -> list[ConfigProblem]:
    from function_node.keys import key_file_format, resolve_password

    path = key_path(home, settings)
    if not path.exists():
        return [
            ConfigProblem(
                str(path),
                None,
                "no key file: `fxn start` never creates a node identity by itself",
                f"{init_hint(home)}; `fxn accounts import` brings an existing key; or fix node.keyFile",
            )
        ]
    try:
        kind = key_file_format(path)
        password = resolve_password(settings, home, prompt=False, environ=environ)
    except KeyFileError as exc:
        return [_key_problem(path, exc)]
    can_prompt = sys.stdin.isatty() if interactive is None else interactive
    if kind == "keystore" and password is None and not can_prompt:
        return [
            ConfigProblem(
                str(path),
                None,
                "is an encrypted keystore and there is no password source (and no terminal to ask on)",
                "set FXN_KEY_PASSWORD in the node's environment, or node.keyPasswordFile in config.yaml",
            )
        ]
    return []


def _key_problem(path: Path, exc: KeyFileError) -> ConfigProblem:
    """A KeyFileError as a problem of the key file: its message without the path it starts with."""
    text = str(exc)
    for prefix in (f"key file {path} ", f"{path} "):
        text = text.removeprefix(prefix)
    message, _, fix = text.partition("; ")
    return ConfigProblem(str(path), None, message, fix)
