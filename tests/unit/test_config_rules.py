"""Rules `fxn start` used to enforce (or misread) that the files now state: booleans are true/false only,
metrics.listenAddress is host:port with a real port, matmul.maxSize is bounded (SPEC §3, issue 13)."""

from __future__ import annotations

import itertools
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from function_node.config.backends import BackendConfig
from function_node.config.loader import load_backends_file, load_settings_file
from function_node.config.settings import Settings
from function_node.errors import ConfigError, ConfigProblem

BOOL_FIX = "write true or false, without quotes"


def bool_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The alias path of every boolean key of ``model`` (lists of models: their first element)."""
    for name, field in model.model_fields.items():
        loc = (*prefix, field.alias or name)
        annotation = field.annotation
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is list and args and isinstance(args[0], type):
            annotation, loc = args[0], (*loc, "0")
        if annotation is bool:
            yield loc
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from bool_fields(annotation, loc)


def nest(loc: tuple[str, ...], value: object, base: dict[str, Any]) -> dict[str, Any]:
    target: Any = base
    for part, following in itertools.pairwise(loc):
        if part == "0":
            continue
        default: Any = [{}] if following == "0" else {}
        target = target.setdefault(part, default)
        if isinstance(target, list):
            target = target[0]
    target[loc[-1]] = value
    return base


def problems(load: Any, path: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load(path, env or {})
    return info.value.problems


SETTINGS_BOOLS = list(bool_fields(Settings))
BACKEND_BOOLS = list(bool_fields(BackendConfig))


def test_the_boolean_keys_are_found() -> None:
    assert ("registry", "bypassAuth") in SETTINGS_BOOLS
    assert ("auth", "acceptLegacySignatures") in SETTINGS_BOOLS
    assert ("models", "0", "healthCheck", "enabled") in BACKEND_BOOLS


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "OFF", "y"])
@pytest.mark.parametrize("loc", SETTINGS_BOOLS, ids=".".join)
def test_config_yaml_booleans_are_true_or_false_only(tmp_path: Path, loc: tuple[str, ...], word: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"# {word}\n" + yaml.safe_dump(nest(loc, "WORD", {})).replace("WORD", word))
    (problem,) = problems(load_settings_file, path)
    dotted = ".".join(loc)
    assert problem.message == f"{dotted}: Input should be a valid boolean, got {word!r}"
    assert problem.fix == BOOL_FIX
    assert problem.line == len(loc) + 1  # the key's own line, under the comment


@pytest.mark.parametrize("loc", SETTINGS_BOOLS, ids=".".join)
def test_environment_booleans_are_true_or_false_only(tmp_path: Path, loc: tuple[str, ...]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("{}\n")
    var = "FXN_" + "_".join(part.upper() for part in loc)
    (problem,) = problems(load_settings_file, path, {var: "yes"})
    assert problem.file == f"environment variable {var}"
    assert problem.fix == BOOL_FIX
    for word, value in (("true", True), ("False", False), ("TRUE", True)):
        settings = load_settings_file(path, {var: word})
        current: Any = settings
        for part in loc:
            current = next(
                getattr(current, n) for n, f in type(current).model_fields.items() if (f.alias or n) == part
            )
        assert current is value


@pytest.mark.parametrize("loc", BACKEND_BOOLS, ids=".".join)
def test_backend_yaml_booleans_are_true_or_false_only(tmp_path: Path, loc: tuple[str, ...]) -> None:
    path = tmp_path / "backend.yaml"
    doc = {"models": [{"name": "m", "backends": [{"url": "http://127.0.0.1:8000"}]}]}
    path.write_text(yaml.safe_dump(nest(loc, "WORD", doc)).replace("WORD", "yes"))
    (problem,) = problems(load_backends_file, path)
    assert problem.message == f"{'.'.join(loc)}: Input should be a valid boolean, got 'yes'"
    assert problem.fix == BOOL_FIX
    path.write_text(yaml.safe_dump(nest(loc, "WORD", doc)).replace("WORD", "false"))
    current: Any = load_backends_file(path, {})
    for part in loc:
        if part == "0":
            current = current[0]
            continue
        current = next(
            getattr(current, n) for n, f in type(current).model_fields.items() if (f.alias or n) == part
        )
    assert current is False


def test_a_yes_where_text_is_expected_stays_the_word(tmp_path: Path) -> None:
    path = tmp_path / "backend.yaml"
    path.write_text("models:\n  - name: no\n    upstreamModel: on\n    backends: [{url: 'http://h:1'}]\n")
    model = load_backends_file(path, {}).models[0]
    assert (model.name, model.upstream_model) == ("no", "on")


@pytest.mark.parametrize(
    "address",
    ["9109", "localhost:99999", "localhost:0", ":9100", "localhost:", "localhost:http", "[::1]:70000"],
)
def test_metrics_listen_address_must_be_host_and_a_real_port(tmp_path: Path, address: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f'node:\n  listenPort: 8080\nmetrics:\n  listenAddress: "{address}"\n')
    (problem,) = problems(load_settings_file, path)
    assert problem.line == 4
    assert problem.message == (
        f"metrics.listenAddress: metrics.listenAddress {address!r} must be host:port with a port from 1 to "
        "65535"
    )
    assert problem.fix == "write e.g. 127.0.0.1:9100, or leave it empty for /metrics on the main port"


@pytest.mark.parametrize("address", ["127.0.0.1:9100", "[::1]:9100", "0.0.0.0:65535", ""])
def test_good_metrics_listen_addresses(tmp_path: Path, address: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f'metrics:\n  listenAddress: "{address}"\n')
    assert load_settings_file(path, {}).metrics.listen_address == address


def test_matmul_max_size_is_at_most_65536(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("challenge:\n  matmul:\n    maxSize: 65537\n")
    (problem,) = problems(load_settings_file, path)
    assert (problem.line, problem.message) == (
        3,
        "challenge.matmul.maxSize: Input should be less than or equal to 65536",
    )
    path.write_text("challenge:\n  matmul:\n    maxSize: 65536\n")
    assert load_settings_file(path, {}).challenge.matmul.max_size == 65536


def test_memory_nonces_with_several_workers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("node:\n  workers: 2\n")
    (problem,) = problems(load_settings_file, path)
    assert problem.message == (
        "node.workers > 1 needs nonceCache.backend: redis, so that every worker refuses a replay"
    )
    (problem,) = problems(load_settings_file, tmp_path / "config.yaml", {"FXN_NODE_WORKERS": "3"})
    assert "node.workers > 1 needs nonceCache.backend: redis" in problem.message
