"""The typed model of backend.yaml (SPEC §4): models, their backends, timeouts and health checks."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from function_node.config.durations import Duration
from function_node.config.settings import ConfigModel
from function_node.errors import ConfigError, ConfigProblem

__all__ = ["BackendConfig", "BackendEndpoint", "HealthCheck", "ModelConfig", "Timeouts"]

_ENV_REF: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Timeouts(ConfigModel):
    connect: Duration = Field(default=5.0, gt=0)
    first_byte: Duration = Field(default=120.0, gt=0)
    total: Duration = Field(default=900.0, gt=0)


class HealthCheck(ConfigModel):
    path: str = "/v1/models"
    interval: Duration = Field(default=15.0, gt=0)
    timeout: Duration = Field(default=5.0, gt=0)
    # A busy backend can stall one probe (vLLM generating on every core held a process still for 6-9 s
    # here): only this many failed probes in a row mark it unhealthy. A refused connection on a real
    # request still marks it at once (node/relay.py).
    unhealthy_after: int = Field(default=3, ge=1)
    enabled: bool = True

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("healthCheck.path must start with /")
        return value


class BackendEndpoint(ConfigModel):
    url: str
    api_key_env: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    weight: int = Field(default=1, ge=1)
    max_concurrency: int = Field(default=0, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"backend url {value!r} must be an http:// or https:// URL with a host")
        if "@" in parts.netloc:
            # Backend URLs are shown in logs, /metrics and /ready: a password in one would be public.
            # The message repeats the URL without what precedes the "@".
            shown = f"{parts.scheme}://***@{parts.netloc.rpartition('@')[2]}"
            raise ValueError(
                f"backend url {shown!r} has credentials in it (user:password@), and backend URLs "
                "appear in logs and status pages; remove them from the URL and reference the secret "
                'by environment variable: apiKeyEnv, or headers: {Authorization: "Basic ${ENV_NAME}"}'
            )
        return value.strip()

    @property
    def base_url(self) -> str:
        """The server root: the configured URL without a trailing ``/`` or ``/v1``."""
        url = self.url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def env_references(self) -> list[str]:
        """Every environment variable this backend needs at start."""
        names = [self.api_key_env] if self.api_key_env else []
        for value in self.headers.values():
            names.extend(_ENV_REF.findall(value))
        return names

    def resolved_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers to send upstream, secrets filled in from the environment; ConfigError if one is unset."""
        env = os.environ if environ is None else environ
        missing = [name for name in self.env_references() if name not in env]
        if missing:
            raise ConfigError(
                ConfigProblem(
                    file="backend.yaml",
                    line=None,
                    message=f"backend {self.url} needs environment variable(s) {', '.join(missing)}, unset",
                    fix=f"export {missing[0]}=... before starting the node",
                )
            )
        headers = {key: _ENV_REF.sub(lambda m: env[m.group(1)], value) for key, value in self.headers.items()}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {env[self.api_key_env]}"
        return headers


class ModelConfig(ConfigModel):
    name: str = Field(min_length=1)
    fxn_id: str = ""
    upstream_model: str = ""
    backends: list[BackendEndpoint] = Field(min_length=1)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    # SPEC §6: ask the backend for stream usage when the client did not, and keep it for the ledger.
    force_stream_usage: bool = True

    @field_validator("fxn_id", mode="before")
    @classmethod
    def _fxn_id(cls, value: object) -> str:
        # The on-chain modelId is a uint256; operators write it quoted or bare.
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError('fxnId is the network\'s model id, a whole number such as "2"')
        text = str(value).strip()
        if text and not text.isdigit():
            raise ValueError(f"fxnId {text!r} must be a whole number (the on-chain modelId)")
        return text

    @property
    def forwarded_model(self) -> str:
        return self.upstream_model or self.name


class BackendConfig(ConfigModel):
    """The whole of backend.yaml."""

    models: list[ModelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> BackendConfig:
        seen: set[str] = set()
        for model in self.models:
            if model.name in seen:
                raise ValueError(f"model {model.name!r} is listed twice; model names must be unique")
            seen.add(model.name)
        return self

    def model(self, name: str) -> ModelConfig | None:
        for model in self.models:
            if model.name == name:
                return model
        return None

    def env_problems(self, environ: Mapping[str, str] | None = None) -> list[str]:
        env = os.environ if environ is None else environ
        return sorted(
            {name for m in self.models for b in m.backends for name in b.env_references() if name not in env}
        )
