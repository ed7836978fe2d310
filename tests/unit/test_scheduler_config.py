"""scheduler.yaml: defaults, relative paths, node URLs from provider metadata, every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from function_node.challenges.matmul.driver import DEFAULT_PROOF_ROWS
from function_node.errors import ConfigError
from function_node.scheduler.config import load_scheduler_config, node_url_from_metadata


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scheduler.yaml"
    path.write_text(text)
    return path


def test_minimal_file_with_defaults(tmp_path: Path) -> None:
    config = load_scheduler_config(
        write(tmp_path, 'nodes: [{url: "http://127.0.0.1:8080/"}]\ninterval: 5m\n')
    )
    assert config.nodes[0].url == "http://127.0.0.1:8080"
    assert config.interval == 300.0
    assert (config.matmul.size, config.matmul.rows, config.concurrency) == (1024, 32, 4)
    assert config.matmul.rows == DEFAULT_PROOF_ROWS  # the same k as fxn challenge's
    assert config.key_path == tmp_path.resolve() / "schedulerkey.json"
    assert config.database_path == tmp_path.resolve() / "scheduler.db"


def test_no_nodes_and_no_registry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no nodes to probe"):
        load_scheduler_config(write(tmp_path, "interval: 10s\n"))


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="intervall: Extra inputs are not permitted"):
        load_scheduler_config(write(tmp_path, 'nodes: [{url: "http://x:1"}]\nintervall: 10s\n'))


def test_too_many_proof_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"matmul\.rows"):
        load_scheduler_config(write(tmp_path, 'nodes: [{url: "http://x:1"}]\nmatmul: {rows: 65}\n'))


def test_bad_node_url_and_address_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scheduler_config(write(tmp_path, 'nodes: [{url: "ftp://x", address: "0x12"}]\n'))
    text = str(info.value)
    assert "must be an http:// or https:// URL" in text and "not 0x followed by 40 hex digits" in text


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_scheduler_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_scheduler_config(write(tmp_path, "nodes: [\n"))
    assert info.value.problems[0].line is not None


def test_registry_source_alone_is_enough(tmp_path: Path) -> None:
    text = (
        'providerRegistry: {rpcProvider: "http://127.0.0.1:8545", routerSmartContractAddress: "0x'
        + "11" * 20
        + '"}\n'
    )
    config = load_scheduler_config(write(tmp_path, text))
    assert config.provider_registry.enabled and config.nodes == []


@pytest.mark.parametrize(
    ("metadata", "url"),
    [
        ("http://10.0.0.1:8080/", "http://10.0.0.1:8080"),
        ('{"url": "https://node.example:443"}', "https://node.example:443"),
        ('{"endpoint": "http://a:1"}', "http://a:1"),
        ("not a url", None),
        ('{"url": 3}', None),
        ("{broken", None),
        ("ftp://a", None),
    ],
)
def test_node_url_from_metadata(metadata: str, url: str | None) -> None:
    assert node_url_from_metadata(metadata) == url


def test_logger_section_defaults_and_values(tmp_path: Path) -> None:
    node = 'nodes: [{url: "http://x:1"}]\n'
    default = load_scheduler_config(write(tmp_path, node)).logger
    assert (default.verbosity, default.format) == ("warn", "console")
    chosen = load_scheduler_config(write(tmp_path, node + "logger: {verbosity: debug, format: json}\n"))
    assert (chosen.logger.verbosity, chosen.logger.format) == ("debug", "json")
    with pytest.raises(ConfigError, match=r"logger\.verbosity: Input should be 'debug', 'info'"):
        load_scheduler_config(write(tmp_path, node + "logger: {verbosity: loud}\n"))
