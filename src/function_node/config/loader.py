"""Load config.yaml and backend.yaml: YAML with line numbers, ``FXN_<PATH>`` overrides, validation.

Every problem found is reported at once, each as ``file:line: message (fix)``, so an operator fixes the
whole file in one pass. Line numbers come from PyYAML's node marks: the document is composed to nodes
first (keeping marks), then constructed to Python values, and pydantic's error locations (which use the
camelCase alias keys) are walked back down the node tree to the line of the offending key.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from function_node.config.backends import BackendConfig
from function_node.config.overrides import Loc, apply_overrides
from function_node.config.settings import Settings
from function_node.config.yaml_rules import StrictBoolLoader
from function_node.errors import ConfigError, ConfigProblem

__all__ = [
    "load_backends",
    "load_backends_file",
    "load_settings",
    "load_settings_file",
]

_CONFIG_FILE: Final = "config.yaml"
_BACKEND_FILE: Final = "backend.yaml"
_DOTTED_KEY: Final = re.compile(r"\b[a-z][A-Za-z]*(?:\.[a-z][A-Za-z]*)+\b")
_QUOTED: Final = re.compile(r"'([^']+)'")
_ENV_REF: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEY_LOC: Final = "[key]"  # pydantic's location part for a mapping's key (the key itself is refused)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class _Document:
    """A parsed YAML file: its values, its node tree (for line numbers), and structural problems."""

    data: Any
    root: yaml.Node | None
    problems: list[ConfigProblem]


def load_settings(home: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """config.yaml of ``home`` with ``FXN_<PATH>`` overrides applied; ConfigError lists every problem."""
    return load_settings_file(home / _CONFIG_FILE, environ)


def load_settings_file(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    doc = _read(path)
    data = {} if doc.data is None else doc.data
    problems = list(doc.problems)
    overridden: dict[Loc, str] = {}
    settings: Settings | None = None
    if isinstance(data, dict):
        problems.extend(apply_overrides(data, env, overridden))
        settings, invalid = _validate(Settings, data, path, doc.root, overridden)
        problems.extend(invalid)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def load_backends(home: Path, environ: Mapping[str, str] | None = None) -> BackendConfig:
    """backend.yaml of ``home``; each unset environment variable it references is a problem too."""
    return load_backends_file(home / _BACKEND_FILE, environ)


def load_backends_file(path: Path, environ: Mapping[str, str] | None = None) -> BackendConfig:
    """backend.yaml at any path (the SIGHUP reload reads a file that may have been replaced)."""
    env = os.environ if environ is None else environ
    doc = _read(path)
    data = {} if doc.data is None else doc.data
    problems = list(doc.problems)
    config: BackendConfig | None = None
    if isinstance(data, dict):
        config, invalid = _validate(BackendConfig, data, path, doc.root, {})
        problems.extend(invalid)
    if problems or config is None:
        raise ConfigError(problems)
    for i, model in enumerate(config.models):
        for j, backend in enumerate(model.backends):
            base: Loc = ("models", i, "backends", j)
            if backend.api_key_env and backend.api_key_env not in env:
                line = _line_of(doc.root, (*base, "apiKeyEnv"))
                problems.append(_unset_env(path, line, backend.api_key_env, f"{model.name} ({backend.url})"))
            for header, value in backend.headers.items():
                for name in _ENV_REF.findall(value):
                    if name not in env:
                        line = _line_of(doc.root, (*base, "headers", header))
                        problems.append(_unset_env(path, line, name, f"{model.name} ({backend.url})"))
    if problems:
        raise ConfigError(problems)
    return config


def _unset_env(path: Path, line: int | None, name: str, where: str) -> ConfigProblem:
    return ConfigProblem(
        file=str(path),
        line=line,
        message=f"environment variable {name} is not set, and backend {where} needs it",
        fix=f"export {name}=... in the node's environment",
    )


# --- reading YAML -----------------------------------------------------------------------------------


def _read(path: Path) -> _Document:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            ConfigProblem(str(path), None, "file not found", "run `fxn init` to create it")
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            ConfigProblem(str(path), None, f"cannot read the file: {reason}", "check its permissions")
        ) from None
    loader = StrictBoolLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            message = f"invalid YAML: {exc.context}, {exc.problem}"
        fix = "check the indentation and quoting on this line and the one before"
        raise ConfigError(ConfigProblem(str(path), mark.line + 1 if mark else None, message, fix)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            ConfigProblem(str(path), None, f"invalid YAML: {exc}", "check the file's syntax")
        ) from None
    finally:
        loader.dispose()
    problems = _duplicate_keys(path, root)
    if data is not None and not isinstance(data, dict):
        problems.append(
            ConfigProblem(
                str(path), 1, "the file must be a mapping of keys to values", "see docs/configuration.md"
            )
        )
    return _Document(data=data, root=root, problems=problems)


def _duplicate_keys(path: Path, node: yaml.Node | None) -> list[ConfigProblem]:
    # PyYAML silently keeps the last of two equal keys; an operator editing one of them would be surprised.
    problems: list[ConfigProblem] = []
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        problems.append(
                            ConfigProblem(
                                str(path),
                                line,
                                f"key `{key.value}` appears twice (first on line {seen[key.value]})",
                                "keep only one of them",
                            )
                        )
                    seen.setdefault(key.value, line)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return sorted(problems, key=lambda p: p.line or 0)


def _line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node of ``loc`` present in the document."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            # The last of duplicated keys is the one PyYAML keeps, so it is the one to point at.
            matches = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and _is_key(k, part)]
            if not matches:
                return line
            key, node = matches[-1]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _is_key(key: yaml.ScalarNode, part: str | int) -> bool:
    if key.value == str(part):
        return True
    # A key YAML read as a number (an unquoted 0x... address) is named by its decimal value.
    if key.tag.endswith(":int"):
        with contextlib.suppress(ValueError):
            return int(key.value.replace("_", ""), 0) == int(part)
    return False


def _last_scalar_line(root: yaml.Node | None, text: str) -> int | None:
    found: int | None = None
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode) and node.value == text:
            line = node.start_mark.line + 1
            found = line if found is None else max(found, line)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in node.value for v in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return found


# --- validation ---------------------------------------------------------------------------------------


def _drop_empty_sections(data: Any, model: type[BaseModel]) -> None:
    """``registry:`` with every key under it commented out parses as null: treat it as absent."""
    if not isinstance(data, dict):
        return
    for name, field in model.model_fields.items():
        key = field.alias or name
        sub = _submodel(model, key)
        if sub is None or key not in data:
            continue
        if data[key] is None:
            del data[key]
        elif isinstance(data[key], list):
            for item in data[key]:
                _drop_empty_sections(item, sub)
        else:
            _drop_empty_sections(data[key], sub)


def _validate(
    model: type[M], data: Any, path: Path, root: yaml.Node | None, overridden: dict[Loc, str]
) -> tuple[M | None, list[ConfigProblem]]:
    _drop_empty_sections(data, model)
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        problems = [_problem(model, err, path, root, overridden) for err in exc.errors()]
        return None, sorted(problems, key=lambda p: (p.file, p.line or 0))


def _problem(
    model: type[BaseModel], err: Any, path: Path, root: yaml.Node | None, overridden: dict[Loc, str]
) -> ConfigProblem:
    loc: Loc = tuple(err["loc"])
    kind: str = err["type"]
    message: str = err["msg"].removeprefix("Value error, ")
    dotted = ".".join(str(p) for p in loc if p != _KEY_LOC)
    for prefix, var in overridden.items():
        if loc[: len(prefix)] == prefix:
            return ConfigProblem(f"environment variable {var}", None, f"{dotted}: {message}", _fix(kind, err))
    if not loc:
        return _model_problem(message, path, root)
    line = _line_of(root, loc)
    if kind == "extra_forbidden":
        return ConfigProblem(str(path), line, f"unknown key `{dotted}`", _did_you_mean(model, loc))
    if kind == "missing":
        return ConfigProblem(str(path), line, f"`{dotted}` is required", f"add `{loc[-1]}`")
    if kind.endswith(("_type", "_parsing")):
        message = f"{message}, got {err['input']!r}"
    elif kind == "value_error":
        message = message.partition("; ")[0]
    return ConfigProblem(str(path), line, f"{dotted}: {message}", _fix(kind, err))


def _model_problem(message: str, path: Path, root: yaml.Node | None) -> ConfigProblem:
    # A cross-field check names its keys in the message ("nonceCache.ttl must be ..."): point at the first
    # one present in the file, else at the last occurrence of a quoted value (a duplicated model name).
    message, _, fix = message.partition("; ")
    line: int | None = None
    for key in _DOTTED_KEY.findall(message):
        candidate = _line_of(root, key.split("."))
        deepest = _line_of(root, key.split(".")[:-1])
        if candidate is not None and candidate != deepest:
            line = candidate
            break
    if line is None:
        for quoted in _QUOTED.findall(message):
            line = _last_scalar_line(root, quoted)
            if line is not None:
                break
    return ConfigProblem(str(path), line, message, fix or "see docs/configuration.md")


def _fix(kind: str, err: Any) -> str:
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "write a whole number, without quotes"
    if kind in ("float_type", "float_parsing"):
        return "write a number, without quotes"
    if kind in ("bool_type", "bool_parsing"):
        return "write true or false, without quotes"
    if kind == "string_type":
        return 'write text, quoted if it looks like a number: "..."'
    if kind == "list_type":
        return "write a YAML list: [a, b] or one `- item` per line"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "write a mapping of keys, indented under this one"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"use one of {expected}" if expected else "use one of the listed values"
    if kind.startswith(("greater_than", "less_than", "too_short", "too_long")):
        return "change the value to fit the limit"
    message: str = err["msg"].removeprefix("Value error, ")
    _, _, fix = message.partition("; ")
    return fix or "see docs/configuration.md"


def _did_you_mean(model: type[BaseModel], loc: Loc) -> str:
    current: type[BaseModel] | None = model
    keyed = False  # the previous part was a mapping field: this part is one of its keys
    for part in loc[:-1]:
        if current is None or isinstance(part, int) or keyed:
            keyed = False
            continue
        keyed = _mapping_values(current, part) is not None
        current = _mapping_values(current, part) or _submodel(current, part)
    if current is None:
        return "remove it"
    known = [f.alias or n for n, f in current.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    lowered = {k.lower(): k for k in known}
    if str(loc[-1]).lower() in lowered:
        close = [lowered[str(loc[-1]).lower()]]
    if close:
        return f"did you mean `{close[0]}`?"
    return f"remove it; the keys here are {', '.join(known)}"


def _mapping_values(model: type[BaseModel], alias: str) -> type[BaseModel] | None:
    """The model of a mapping field's values (``limits.callers``: address -> CallerLimits)."""
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias and typing.get_origin(field.annotation) is dict:
            args = typing.get_args(field.annotation)
            value = args[1] if len(args) == 2 else None
            if isinstance(value, type) and issubclass(value, BaseModel):
                return value
    return None


def _submodel(model: type[BaseModel], alias: str) -> type[BaseModel] | None:
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias:
            annotation = field.annotation
            args = typing.get_args(annotation)
            candidate = args[0] if typing.get_origin(annotation) is list and args else annotation
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                return candidate
    return None
