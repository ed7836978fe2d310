"""The typed model of config.yaml (SPEC §3). Keys are camelCase on disk, snake_case in code.

Durations are float seconds. Loading, environment overrides and error formatting live in
:mod:`function_node.config.loader`; this module only says what a valid file is.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from function_node.config.durations import Duration
from function_node.errors import SigningError
from function_node.signing import normalize_address

__all__ = [
    "MAX_MATMUL_SIZE",
    "AuthSettings",
    "CallerLimits",
    "ChallengeSettings",
    "ConfigModel",
    "LimitValues",
    "LimitsSettings",
    "LoggerSettings",
    "MatmulSettings",
    "MetricsSettings",
    "NodeSettings",
    "NonceCacheSettings",
    "ProxySettings",
    "RegistryPoll",
    "RegistrySettings",
    "SchedulerRegistryPoll",
    "Settings",
    "StaticLists",
    "TracingSettings",
    "UsageSettings",
    "public_url",
    "rpc_url_list",
    "split_host_port",
]

MAX_MATMUL_SIZE: Final = 65536
_MAX_PORT: Final = 65535
_ADDRESS_BITS: Final = 160
_DEFAULT_RETENTION_S: Final = 90 * 86400.0


class ConfigModel(BaseModel):
    """Base of every config model: camelCase aliases, unknown keys refused, strict types, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, frozen=True
    )


def _address(value: str) -> str:
    try:
        return normalize_address(value)
    except SigningError as exc:
        raise ValueError(str(exc)) from None


def _address_list(value: object) -> list[str]:
    """A single address or a list of them; empty strings are dropped."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("expected an address or a list of addresses")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected an address string, got {item!r}")
        if item.strip():
            out.append(_address(item))
    return out


def rpc_url_list(value: object, key: str = "rpcProvider") -> list[str]:
    """A JSON-RPC URL or a list of them, blanks dropped, each with an http(s) or ws(s) scheme."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{key} is a URL or a list of URLs")
    urls = [i.strip() for i in items if i.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"{key} {url!r} must start with http://, https://, ws:// or wss://")
    return urls


def public_url(value: str, key: str) -> str:
    """An http(s) URL with a host and nothing after the path (the node's base URL), without a trailing /."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key} {value!r} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError(f"{key} {value!r} must not carry credentials, a query or a fragment")
    return text.rstrip("/")


class NodeSettings(ConfigModel):
    listen_address: str = "127.0.0.1"
    listen_port: int = Field(default=8080, ge=1, le=_MAX_PORT)
    key_file: str = "nodekey.json"
    key_password_file: str = ""
    public_address: str = ""
    # How gateways and schedulers reach this node: the default provider metadata (SPEC §8.1).
    public_url: str = ""
    workers: int = Field(default=1, ge=1, le=256)
    drain_timeout: Duration = 30.0

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return public_url(value, "node.publicUrl") if value.strip() else ""


class LoggerSettings(ConfigModel):
    verbosity: Literal["debug", "info", "warn", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class RegistryPoll(ConfigModel):
    poll_interval: Duration = Field(default=60.0, gt=0)
    max_staleness: Duration = Field(default=3600.0, gt=0)


class SchedulerRegistryPoll(RegistryPoll):
    contract: str = ""

    @field_validator("contract")
    @classmethod
    def _contract(cls, value: str) -> str:
        return _address(value) if value.strip() else ""


class StaticLists(ConfigModel):
    gateways: list[str] = Field(default_factory=list)
    schedulers: list[str] = Field(default_factory=list)

    @field_validator("gateways", "schedulers", mode="before")
    @classmethod
    def _addresses(cls, value: object) -> list[str]:
        return _address_list(value)


class RegistrySettings(ConfigModel):
    router_smart_contract_address: str = ""
    bypass_auth: bool = False
    gateway: RegistryPoll = Field(default_factory=RegistryPoll)
    provider: RegistryPoll = Field(default_factory=RegistryPoll)
    scheduler: SchedulerRegistryPoll = Field(default_factory=SchedulerRegistryPoll)
    static: StaticLists = Field(default_factory=StaticLists)

    @field_validator("router_smart_contract_address")
    @classmethod
    def _router(cls, value: str) -> str:
        return _address(value) if value.strip() else ""


class AuthSettings(ConfigModel):
    max_clock_skew: Duration = Field(default=300.0, gt=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    accept_legacy_signatures: bool = True
    # A body must arrive within this, counted from the end of the headers (not per chunk), so a slow
    # sender cannot hold a connection and its buffer for ever (SPEC §5 step 4).
    body_read_timeout: Duration = Field(default=30.0, gt=0)
    # Memory that bodies of requests whose signature is not yet verified may hold together.
    max_unverified_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)

    @model_validator(mode="after")
    def _budget_holds_one_body(self) -> AuthSettings:
        if self.max_unverified_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"auth.maxUnverifiedBodyBytes ({self.max_unverified_body_bytes}) must be at least "
                f"auth.maxBodyBytes ({self.max_body_bytes}), or no body of the largest size could be read"
            )
        return self


class NonceCacheSettings(ConfigModel):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    ttl: Duration = Field(default=600.0, gt=0)
    cleanup_interval: Duration = Field(default=60.0, gt=0)
    # Bounds the memory store: past this many live nonces new claims are refused (fail closed) rather
    # than letting a flood of signed requests grow memory without limit.
    max_entries: int = Field(default=1_000_000, ge=1000)
    # One caller's share of the store (0 = half of maxEntries), so a flooding gateway cannot get every
    # other caller refused (SPEC §11); past it the caller gets 429 nonce_quota_exceeded.
    max_entries_per_caller: int = Field(default=0, ge=0)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redisUrl must start with redis://, rediss:// or unix://")
        return value


class ProxySettings(ConfigModel):
    max_idle_conns: int = Field(default=100, ge=1)
    idle_conn_timeout: Duration = Field(default=90.0, gt=0)


def split_host_port(address: str, key: str = "metrics.listenAddress") -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) with a port from 1 to 65535; ValueError naming ``key``."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= _MAX_PORT:
        raise ValueError(
            f"{key} {address!r} must be host:port with a port from 1 to {_MAX_PORT}; "
            "write e.g. 127.0.0.1:9100, or leave it empty for /metrics on the main port"
        )
    return host.strip("[]"), int(port)


class MetricsSettings(ConfigModel):
    listen_address: str = ""

    @field_validator("listen_address")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value.strip():
            split_host_port(value)
        return value.strip()


class TracingSettings(ConfigModel):
    # OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (…/v1/traces is added); empty: no tracing at all.
    otlp_endpoint: str = ""
    service_name: str = "function-node"

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        text = value.strip()
        if text and not text.startswith(("http://", "https://")):
            raise ValueError(f"tracing.otlpEndpoint {value!r} must be an http:// or https:// URL (OTLP/HTTP)")
        return text


class MatmulSettings(ConfigModel):
    # 65536² int8 inputs are 4 GiB each and the int32 product 16 GiB: past that no GPU holds a challenge.
    max_size: int = Field(default=16384, ge=1, le=MAX_MATMUL_SIZE)
    max_cpu_size: int = Field(default=4096, ge=1)
    max_explicit_size: int = Field(default=1024, ge=1)
    proof_ttl: Duration = Field(default=30.0, gt=0)
    max_pending_proofs: int = Field(default=4, ge=1)


class ChallengeSettings(ConfigModel):
    matmul: MatmulSettings = Field(default_factory=MatmulSettings)
    endpoint_allowlist: list[str] = Field(default_factory=list)


class LimitValues(ConfigModel):
    """One caller's budgets (SPEC §11); 0 means unlimited."""

    requests_per_minute: int = Field(default=0, ge=0)
    tokens_per_minute: int = Field(default=0, ge=0)
    max_concurrent: int = Field(default=0, ge=0)


class CallerLimits(ConfigModel):
    """A caller's own budgets; a key left out comes from ``limits.default``."""

    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)
    max_concurrent: int | None = Field(default=None, ge=0)


def _caller_key(key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 1 << _ADDRESS_BITS:
        # YAML reads an unquoted 0x... as a hexadecimal number, and its text is gone by now.
        raise ValueError(f'{key:#042x} is a number to YAML, not an address; quote the address: "0x..."')
    if not isinstance(key, str):
        raise ValueError(f"{key!r} is not a caller address; write it quoted, 0x followed by 40 hex digits")
    return _address(key).lower()


CallerAddress = Annotated[str, BeforeValidator(_caller_key)]


class LimitsSettings(ConfigModel):
    default: LimitValues = Field(default_factory=LimitValues)
    # Keyed by lower-case address (any case in the file); each entry overrides the default key by key.
    callers: dict[CallerAddress, CallerLimits] = Field(default_factory=dict)

    @field_validator("callers", mode="before")
    @classmethod
    def _one_entry_per_caller(cls, value: object) -> object:
        # Two spellings of one address would be merged silently (the last winning) once normalised.
        if isinstance(value, dict):
            seen: set[str] = set()
            for key in value:
                try:
                    address = _caller_key(key)
                except ValueError:
                    continue  # reported with its own line by the key's validator
                if address in seen:
                    raise ValueError(
                        f"limits.callers lists {address} twice (addresses are compared without case); "
                        "keep one entry per caller"
                    )
                seen.add(address)
        return value

    def for_caller(self, address: str) -> LimitValues:
        """The budgets of ``address`` (lower-case): its own entry over the default, key by key."""
        own = self.callers.get(address)
        if own is None:
            return self.default
        base = self.default
        return LimitValues(
            requests_per_minute=_first(own.requests_per_minute, base.requests_per_minute),
            tokens_per_minute=_first(own.tokens_per_minute, base.tokens_per_minute),
            max_concurrent=_first(own.max_concurrent, base.max_concurrent),
        )


def _first(value: int | None, fallback: int) -> int:
    return fallback if value is None else value


class UsageSettings(ConfigModel):
    # How long the hourly rows of the usage ledger (usage.sqlite in the home directory) are kept.
    retention: Duration = Field(default=_DEFAULT_RETENTION_S, gt=0)


class Settings(ConfigModel):
    """The whole of config.yaml."""

    node: NodeSettings = Field(default_factory=NodeSettings)
    logger: LoggerSettings = Field(default_factory=LoggerSettings)
    rpc_provider: list[str] = Field(default_factory=list)
    chain_id: int = Field(default=0, ge=0)  # 0: any; else every RPC must serve this chain (SPEC §3)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    scheduler_address: list[str] = Field(default_factory=list)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    nonce_cache: NonceCacheSettings = Field(default_factory=NonceCacheSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    challenge: ChallengeSettings = Field(default_factory=ChallengeSettings)

    @field_validator("rpc_provider", mode="before")
    @classmethod
    def _rpc_list(cls, value: object) -> list[str]:
        return rpc_url_list(value)

    @field_validator("scheduler_address", mode="before")
    @classmethod
    def _schedulers(cls, value: object) -> list[str]:
        return _address_list(value)

    NO_GATEWAY_WARNING: ClassVar[str] = (
        "no gateway can be admitted: registry.routerSmartContractAddress is empty and "
        "registry.static.gateways lists none, so every request will be refused (401 unknown_caller); "
        "set one of them in config.yaml"
    )

    @property
    def admits_no_gateway(self) -> bool:
        """No gateway registry, no static gateway list and auth on: every request will be refused."""
        registry = self.registry
        return not (
            registry.bypass_auth or registry.router_smart_contract_address or registry.static.gateways
        )

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.nonce_cache.ttl < 2 * self.auth.max_clock_skew:
            raise ValueError(
                "nonceCache.ttl must be at least 2 × auth.maxClockSkew, or a replayed request could "
                "arrive after its nonce expired; raise nonceCache.ttl or lower auth.maxClockSkew"
            )
        if self.node.workers > 1 and self.nonce_cache.backend != "redis":
            raise ValueError(
                "node.workers > 1 needs nonceCache.backend: redis, so that every worker refuses a replay"
            )
        if self.challenge.matmul.max_cpu_size > self.challenge.matmul.max_size:
            raise ValueError("challenge.matmul.maxCpuSize cannot exceed challenge.matmul.maxSize")
        if self.registry.router_smart_contract_address and not self.rpc_provider:
            raise ValueError(
                "registry.routerSmartContractAddress is set but rpcProvider is empty; set an RPC URL"
            )
        return self
