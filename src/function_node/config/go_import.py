"""Read a Go Function Node's home (``fxn init --from-go DIR``) and convert it to this node's files.

What the Go node kept, as far as its public sources show (docs/configuration.md, "Migrating from the
Go node", lists the assumptions):

* ``config.yaml`` with the same camelCase keys as ours, plus ``modelBackendPath`` (where
  model_backend.yaml is) and possibly ``node.keyfile`` (where the key is); yaml.v3 ignored unknown keys.
* ``model_backend.yaml``, in one of three shapes, newest first:
  one backend: ``backend_provider`` (``fxn`` | ``custom`` | ``vllm`` | ``ollama``), ``url``, ``fxn_id``,
  ``api_key``, ``bearer_token``; or ``models: {name: {url, auth: {api_key, bearer_token}}}``; or
  ``models: {name: url}``. ``api_key`` went upstream as ``x-api-key``, ``bearer_token`` as
  ``Authorization: Bearer``.
* ``nodekey.json``: ``{"public_key", "address", "private_key"}`` in plaintext, our legacy format.

Secrets never reach backend.yaml: each becomes an environment reference (``apiKeyEnv`` or
``${NAME}`` in ``headers``) and is returned as a :class:`GoSecret` for the caller to report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from function_node.config.yaml_rules import StrictBoolLoader
from function_node.errors import ConfigError, ConfigProblem

__all__ = ["GoHome", "GoSecret", "read_go_home"]

_DEFAULT_BACKEND_FILE: Final = "model_backend.yaml"
_DEFAULT_KEY_FILE: Final = "nodekey.json"
# Where a backend_provider without a url is most likely listening: the servers' documented defaults.
_DEFAULT_URLS: Final = {"vllm": "http://127.0.0.1:8000", "ollama": "http://127.0.0.1:11434/v1"}
_PROVIDERS: Final = frozenset({"fxn", "custom", "vllm", "ollama"})
_DEFAULT_MODEL: Final = "default"
# The Go template's nonceCache.ttl (5m) is shorter than this node allows with the default clock skew.
_DEFAULT_SKEW_S: Final = 300.0
_ZAP_ONLY_LEVELS: Final = frozenset({"dpanic", "panic", "fatal"})


@dataclass(frozen=True, slots=True)
class GoSecret:
    env: str  # the variable backend.yaml now references
    value: str  # never written into backend.yaml
    source: str  # where it came from, for the report ("model_backend.yaml api_key")


@dataclass(slots=True)
class GoHome:
    """A converted Go home: the two documents to write, the key, and what the conversion did."""

    config: dict[str, Any]
    backends: dict[str, Any]
    key_file: Path
    sources: list[Path]
    secrets: list[GoSecret] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_go_home(directory: Path, *, model_name: str | None = None) -> GoHome:
    """Convert the Go home in ``directory``; ConfigError (naming the Go file) if it cannot be."""
    config_file = directory / "config.yaml"
    go_config = _load(config_file) if config_file.exists() else {}
    if not isinstance(go_config, dict):
        raise ConfigError(ConfigProblem(str(config_file), None, "is not a mapping of keys", "fix the file"))
    node = _mapping(go_config.get("node"))
    backend_file = directory / str(go_config.get("modelBackendPath") or _DEFAULT_BACKEND_FILE)
    key_name = node.get("keyfile") or node.get("keyFile") or _DEFAULT_KEY_FILE
    key_file = directory / Path(str(key_name)).expanduser()
    if not backend_file.exists():
        raise ConfigError(
            ConfigProblem(
                str(backend_file), None, "not found: no Go node's model_backend.yaml there", "check DIR"
            )
        )
    if not key_file.exists():
        raise ConfigError(
            ConfigProblem(str(key_file), None, "not found: no Go node key file there", "check DIR")
        )
    home = GoHome(
        config={},
        backends={},
        key_file=key_file,
        sources=[p for p in (config_file, backend_file, key_file) if p.exists()],
    )
    home.config = _convert_config(go_config, config_file, home.notes)
    home.backends = _convert_backends(_load(backend_file), backend_file, model_name, home)
    return home


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _load(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictBoolLoader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            ConfigProblem(str(path), None, f"cannot read it: {exc}", "check its permissions")
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            ConfigProblem(str(path), line, "invalid YAML", "fix the file, then run again")
        ) from None


# --- config.yaml --------------------------------------------------------------------------------------


def _convert_config(go: dict[str, Any], path: Path, notes: list[str]) -> dict[str, Any]:
    """The Go config.yaml without the keys this node does not know, and with its rules applied."""
    from function_node.config.durations import format_duration, parse_duration

    doc = _known_keys(go, path.name, notes)
    registry = go.get("registry")
    if isinstance(registry, dict) and "bypass_auth" in registry:
        doc.setdefault("registry", {})["bypassAuth"] = registry["bypass_auth"]
        notes.append(f"{path.name}: registry.bypass_auth is registry.bypassAuth here")
    node = doc.get("node")
    if isinstance(node, dict) and "listenAddress" not in node:
        # The Go node listened on ":<port>", every interface; this node's default is loopback only.
        node["listenAddress"] = "0.0.0.0"
        notes.append(
            f"{path.name}: no node.listenAddress: the Go node listened on every interface, so 0.0.0.0 is kept"
        )
    logger = doc.get("logger")
    if isinstance(logger, dict) and str(logger.get("verbosity", "")).lower() in _ZAP_ONLY_LEVELS:
        notes.append(f"{path.name}: logger.verbosity {logger['verbosity']} is error here")
        logger["verbosity"] = "error"
    nonce = doc.get("nonceCache")
    if isinstance(nonce, dict) and isinstance(nonce.get("ttl"), str):
        auth = _mapping(doc.get("auth"))
        try:
            ttl = parse_duration(nonce["ttl"])
            skew = parse_duration(auth["maxClockSkew"]) if "maxClockSkew" in auth else _DEFAULT_SKEW_S
        except ValueError:
            return doc  # the check after writing names the bad duration
        if ttl < 2 * skew:
            raised = format_duration(2 * skew)
            notes.append(
                f"{path.name}: nonceCache.ttl {nonce['ttl']} raised to {raised}: this node needs at least "
                "2 × auth.maxClockSkew, or a replay could arrive after its nonce expired"
            )
            nonce["ttl"] = raised
    return doc


def _known_keys(go: dict[str, Any], name: str, notes: list[str]) -> dict[str, Any]:
    from pydantic import BaseModel

    from function_node.config.settings import Settings

    def keep(value: Any, model: type[BaseModel], prefix: str) -> Any:
        if not isinstance(value, dict):
            return value
        fields = {(f.alias or n): f.annotation for n, f in model.model_fields.items()}
        out: dict[str, Any] = {}
        for key, item in value.items():
            dotted = f"{prefix}{key}"
            if key not in fields:
                if dotted not in ("modelBackendPath", "node.keyfile", "node.keyFile", "registry.bypass_auth"):
                    notes.append(
                        f"{name}: dropped {dotted} (the Go node ignored unknown keys; this node refuses them)"
                    )
                continue
            sub = fields[key]
            nested = isinstance(sub, type) and issubclass(sub, BaseModel)
            out[key] = keep(item, sub, f"{dotted}.") if nested else item  # type: ignore[arg-type]
        return out

    kept = keep(go, Settings, "")
    return kept if isinstance(kept, dict) else {}


# --- model_backend.yaml -------------------------------------------------------------------------------


def _convert_backends(go: Any, path: Path, model_name: str | None, home: GoHome) -> dict[str, Any]:
    if not isinstance(go, dict):
        raise ConfigError(ConfigProblem(str(path), None, "is not a mapping of keys", "fix the file"))
    if "backend_provider" in go or "url" in go:
        return {"models": [_single_backend(go, path, model_name, home)]}
    models = go.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError(
            ConfigProblem(
                str(path),
                None,
                "has neither backend_provider/url nor a models: mapping, the Go node's two shapes",
                "see docs/configuration.md, Migrating from the Go node",
            )
        )
    out = []
    for name, entry in models.items():
        if isinstance(entry, str):
            out.append({"name": str(name), "backends": [{"url": entry}]})
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigError(ConfigProblem(str(path), None, f"models.{name} has no url", "add url: to it"))
        auth = _mapping(entry.get("auth"))
        backend = _backend(entry["url"], auth, f"{path.name} models.{name}", _env_prefix(str(name)), home)
        out.append({"name": str(name), "backends": [backend]})
    return {"models": out}


def _single_backend(go: dict[str, Any], path: Path, model_name: str | None, home: GoHome) -> dict[str, Any]:
    provider = str(go.get("backend_provider") or "custom").lower()
    if provider not in _PROVIDERS:
        home.notes.append(
            f"{path.name}: backend_provider {provider!r} is not one the Go node knew; kept its url"
        )
    url = go.get("url")
    if not url:
        if provider not in _DEFAULT_URLS:
            raise ConfigError(
                ConfigProblem(
                    str(path),
                    None,
                    f"backend_provider {provider} has no url, and this node needs the model server's URL",
                    "add url: (e.g. http://127.0.0.1:8000) to model_backend.yaml, then run again",
                )
            )
        url = _DEFAULT_URLS[provider]
        home.notes.append(f"{path.name}: no url given; {provider}'s default {url} assumed")
    name = model_name or _DEFAULT_MODEL
    model: dict[str, Any] = {"name": name}
    if model_name is None:
        home.notes.append(
            f"{path.name}: the Go node sent every model to its one backend; this node routes by name, so the "
            f'model is named "{name}": rename it (or pass --model) to the name gateways send'
        )
    fxn_id = str(go.get("fxn_id") or "").strip()
    if fxn_id.isdigit():
        model["fxnId"] = fxn_id
    elif fxn_id:
        home.notes.append(f"{path.name}: fxn_id {fxn_id!r} dropped: fxnId is the on-chain model id, a number")
    model["backends"] = [_backend(str(url), go, path.name, "BACKEND", home)]
    return model


def _backend(url: str, auth: dict[str, Any], source: str, prefix: str, home: GoHome) -> dict[str, Any]:
    backend: dict[str, Any] = {"url": url}
    if auth.get("api_key"):
        env = f"{prefix}_API_KEY"
        backend["headers"] = {"x-api-key": f"${{{env}}}"}
        home.secrets.append(GoSecret(env, str(auth["api_key"]), f"{source} api_key (sent as x-api-key)"))
    if auth.get("bearer_token"):
        env = f"{prefix}_BEARER_TOKEN"
        backend["apiKeyEnv"] = env
        home.secrets.append(GoSecret(env, str(auth["bearer_token"]), f"{source} bearer_token"))
    return backend


def _env_prefix(model: str) -> str:
    """``meta/llama-3.1-8b`` → ``META_LLAMA_3_1_8B``: a variable name never starting with FXN_ (those
    are config.yaml overrides)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", model).strip("_").upper() or "MODEL"
    slug = f"M_{slug}" if slug[0].isdigit() else slug
    return f"BACKEND_{slug}" if slug.startswith("FXN") else slug
