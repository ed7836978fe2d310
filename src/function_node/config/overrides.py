"""``FXN_<PATH>`` environment overrides of config.yaml keys (``FXN_NODE_LISTENPORT=9000``).

A variable's path is the camelCase keys of config.yaml upper-cased and joined by ``_``. Numbers and
booleans are parsed as YAML scalars (booleans are true or false only, as in the files); text, durations
and list items stay text. Overrides are applied to the parsed document before validation, so they take
part in every check.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Any, Final

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from function_node.config.settings import Settings
from function_node.config.yaml_rules import parse_scalar
from function_node.errors import ConfigProblem

__all__ = ["ENV_PREFIX", "NON_CONFIG_VARIABLES", "Loc", "apply_overrides", "env_paths"]

ENV_PREFIX: Final = "FXN_"
# FXN_ variables that are not config.yaml paths; every other FXN_ variable whose first segment names a
# config section (or that is close to a real path) must be a valid override.
NON_CONFIG_VARIABLES: Final = frozenset({"FXN_HOME", "FXN_KEY_PASSWORD", "FXN_KEYSTORE_SCRYPT_N"})

Loc = tuple[str | int, ...]


def env_paths(model: type[BaseModel], prefix: Loc = ()) -> dict[str, tuple[Loc, FieldInfo]]:
    """``FXN_NODE_LISTENPORT`` -> (("node", "listenPort"), field) for every leaf key of the model."""
    out: dict[str, tuple[Loc, FieldInfo]] = {}
    for name, field in model.model_fields.items():
        loc = (*prefix, field.alias or name)
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out.update(env_paths(sub, loc))
        else:
            out[ENV_PREFIX + "_".join(str(p).upper() for p in loc)] = (loc, field)
    return out


def _env_value(raw: str, field: FieldInfo) -> Any:
    annotation = field.annotation
    if typing.get_origin(annotation) is list:
        # Every list in config.yaml holds text (URLs, addresses): split, never YAML-parse, so that an
        # address such as 0x12ab stays a string. "[a, b]" is accepted as well as "a,b".
        text = raw.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [item.strip().strip("'\"") for item in text.split(",") if item.strip()]
    if typing.get_origin(annotation) is dict:
        # A YAML flow mapping, as the file would have it: {"0xabc...": {requestsPerMinute: 60}}.
        return parse_scalar(raw) if raw.strip() else {}
    if annotation in (int, bool) or (annotation is float and not field.metadata):
        # A YAML scalar, so 9000 is an int and true is a bool, exactly as in the file.
        return parse_scalar(raw) if raw.strip() else raw
    return raw  # strings, durations and choices stay text: "0x12ab" must not become an int


def apply_overrides(
    data: dict[str, Any], env: Mapping[str, str], overridden: dict[Loc, str]
) -> list[ConfigProblem]:
    paths = env_paths(Settings)
    sections = {name.split("_")[1] for name in paths}
    problems: list[ConfigProblem] = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in NON_CONFIG_VARIABLES:
            continue
        if var not in paths:
            close = difflib.get_close_matches(var, list(paths), n=1, cutoff=0.8)
            if var.split("_")[1] in sections or close:
                fix = f"did you mean {close[0]}?" if close else "unset it, or see docs/configuration.md"
                problems.append(
                    ConfigProblem(f"environment variable {var}", None, "names no config.yaml key", fix)
                )
            continue
        loc, field = paths[var]
        try:
            value = _env_value(env[var], field)
        except yaml.YAMLError:
            problems.append(
                ConfigProblem(f"environment variable {var}", None, "is not a valid value", "check its syntax")
            )
            continue
        target: Any = data
        for part in loc[:-1]:
            if not isinstance(target, dict):
                break
            target = target.setdefault(part, {})
        if isinstance(target, dict):
            target[loc[-1]] = value
            overridden[loc] = var
    return problems
