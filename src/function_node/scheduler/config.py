"""The reference scheduler's configuration: ``scheduler.yaml`` (camelCase, like config.yaml).

Nodes come from the file (``nodes``), from the provider registry on chain (``providerRegistry``: the
metadata of each active provider holds its node's URL), or both. Relative paths are taken from the
directory that holds the file, so a devnet or an operator can keep everything in one place.

```yaml
keyFile: "schedulerkey.json"     # the scheduler's key (V3 keystore or legacy plaintext)
database: "scheduler.db"         # SQLite file of rounds and verdicts
interval: "60s"                  # time between the starts of two rounds
concurrency: 4                   # nodes probed at the same time
requestTimeout: "120s"
matmul: { size: 1024, rows: 32, backend: "auto" }
inference: { model: "", prompt: "Say hello.", maxTokens: 16 }   # model "" = the node's first model
metrics: { listenAddress: "127.0.0.1:9464" }                    # "" = no /metrics listener
logger: { verbosity: "warn", format: "console" }                # as in config.yaml; --debug wins
nodes:
  - url: "http://127.0.0.1:8080"
    address: "0x..."             # optional: the address IDENTITY must answer with
providerRegistry: { rpcProvider: [], routerSmartContractAddress: "" }
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from function_node.chain.metadata import node_url_from_metadata
from function_node.config.durations import Duration
from function_node.config.settings import ConfigModel, LoggerSettings, rpc_url_list
from function_node.errors import ConfigError, ConfigProblem, SigningError
from function_node.signing import normalize_address

__all__ = [
    "DEFAULT_FILE",
    "InferenceProbe",
    "MatmulProbe",
    "NodeTarget",
    "ProviderSource",
    "SchedulerConfig",
    "SchedulerMetricsSettings",
    "load_scheduler_config",
    "node_url_from_metadata",
]

DEFAULT_FILE: Final = "scheduler.yaml"
MAX_PROOF_ROWS: Final = 64  # SPEC §7.2: a node answers at most 64 rows per proof request
# SPEC §7.2: a node that skipped 10% of the rows passes 32 random rows with probability 0.9^32 ≈ 3%
# (the same default as ``fxn challenge --rows``, challenges.matmul.driver.DEFAULT_PROOF_ROWS).
DEFAULT_PROOF_ROWS: Final = 32


def _address(value: str) -> str:
    try:
        return normalize_address(value)
    except SigningError as exc:
        raise ValueError(str(exc)) from None


class NodeTarget(ConfigModel):
    url: str
    address: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"node url {value!r} must be an http:// or https:// URL with a host")
        return value.strip().rstrip("/")

    @field_validator("address")
    @classmethod
    def _addr(cls, value: str) -> str:
        return _address(value) if value.strip() else ""


class MatmulProbe(ConfigModel):
    size: int = Field(default=1024, ge=2, le=16384)
    rows: int = Field(default=DEFAULT_PROOF_ROWS, ge=1, le=MAX_PROOF_ROWS)
    backend: Literal["auto", "cpu", "gpu"] = "auto"


class InferenceProbe(ConfigModel):
    enabled: bool = True
    model: str = ""
    prompt: str = "Say hello in five words."
    max_tokens: int = Field(default=16, ge=1, le=4096)


class SchedulerMetricsSettings(ConfigModel):
    listen_address: str = ""

    @field_validator("listen_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value and (":" not in value or not value.rsplit(":", 1)[1].isdigit()):
            raise ValueError(f"metrics.listenAddress {value!r} must be host:port, e.g. 127.0.0.1:9464")
        return value


class ProviderSource(ConfigModel):
    rpc_provider: list[str] = Field(default_factory=list)
    router_smart_contract_address: str = ""

    @field_validator("rpc_provider", mode="before")
    @classmethod
    def _rpc(cls, value: object) -> list[str]:
        return rpc_url_list(value, "providerRegistry.rpcProvider")

    @field_validator("router_smart_contract_address")
    @classmethod
    def _router(cls, value: str) -> str:
        return _address(value) if value.strip() else ""

    @property
    def enabled(self) -> bool:
        return bool(self.rpc_provider and self.router_smart_contract_address)


class SchedulerConfig(ConfigModel):
    key_file: str = "schedulerkey.json"
    database: str = "scheduler.db"
    interval: Duration = Field(default=60.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=256)
    request_timeout: Duration = Field(default=120.0, gt=0)
    matmul: MatmulProbe = Field(default_factory=MatmulProbe)
    inference: InferenceProbe = Field(default_factory=InferenceProbe)
    metrics: SchedulerMetricsSettings = Field(default_factory=SchedulerMetricsSettings)
    # Defaults keep the terminal for the round tables: warnings only, rendered for a person.
    logger: LoggerSettings = Field(default_factory=lambda: LoggerSettings(verbosity="warn", format="console"))
    nodes: list[NodeTarget] = Field(default_factory=list)
    provider_registry: ProviderSource = Field(default_factory=ProviderSource)
    # Addresses that are never probed even if the registry lists them (e.g. a provider under review).
    exclude: list[str] = Field(default_factory=list)
    # Where the file was read from: relative paths resolve against it. Not a key of the file.
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("exclude", mode="before")
    @classmethod
    def _exclude(cls, value: object) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError("exclude is a list of addresses")
        return [_address(i) for i in items if i.strip()]

    def with_base_dir(self, base_dir: Path) -> SchedulerConfig:
        self._base_dir = base_dir
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @model_validator(mode="after")
    def _has_nodes(self) -> SchedulerConfig:
        if not self.nodes and not self.provider_registry.enabled:
            raise ValueError(
                "no nodes to probe: list them under nodes: or set providerRegistry.rpcProvider and "
                "providerRegistry.routerSmartContractAddress"
            )
        if self.matmul.rows > self.matmul.size:
            raise ValueError("matmul.rows cannot exceed matmul.size")
        return self

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def key_path(self) -> Path:
        return self.path(self.key_file)

    @property
    def database_path(self) -> Path:
        return self.path(self.database)


def load_scheduler_config(path: Path) -> SchedulerConfig:
    """Read and validate ``path``; ConfigError naming the file, the key and a fix otherwise."""
    name = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            ConfigProblem(
                name, None, "file not found", "create it as docs/scheduler.md shows, or pass --config"
            )
        ) from None
    except OSError as exc:
        raise ConfigError(ConfigProblem(name, None, f"cannot read: {exc.strerror}")) from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(ConfigProblem(name, line, f"not valid YAML: {exc}")) from None
    if not isinstance(raw, dict):
        raise ConfigError(ConfigProblem(name, None, "the top level must be a mapping of keys"))
    try:
        config = SchedulerConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [
            ConfigProblem(name, None, f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}")
            for err in exc.errors()
        ]
        raise ConfigError(problems) from None
    return config.with_base_dir(path.parent.resolve())
