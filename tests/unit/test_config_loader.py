"""config.yaml loading: line-numbered problems, did-you-mean hints, FXN_<PATH> overrides (SPEC §3)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from function_node.config.loader import load_settings, load_settings_file
from function_node.errors import ConfigError, ConfigProblem

GATEWAY = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def _write(home: Path, text: str) -> Path:
    path = home / "config.yaml"
    path.write_text(dedent(text).lstrip("\n"))
    return path


def _problems(home: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_settings(home, environ=env or {})
    return info.value.problems


def _only(home: Path, env: dict[str, str] | None = None) -> ConfigProblem:
    problems = _problems(home, env)
    assert len(problems) == 1, problems
    return problems[0]


def test_missing_file_names_path_and_fix(fxn_home: Path) -> None:
    problem = _only(fxn_home)
    assert problem.file == str(fxn_home / "config.yaml")
    assert problem.line is None
    assert problem.message == "file not found"
    assert "run `fxn init`" in str(problem)


def test_empty_file_gives_defaults(fxn_home: Path) -> None:
    _write(fxn_home, "")
    settings = load_settings(fxn_home, environ={})
    assert settings.node.listen_port == 8080
    assert settings.nonce_cache.ttl == 600.0


def test_valid_file_and_aliases(fxn_home: Path) -> None:
    _write(
        fxn_home,
        f"""
        node:
          listenPort: 9001
        rpcProvider: ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
        schedulerAddress: "{GATEWAY}"
        registry:
          routerSmartContractAddress: "{GATEWAY}"
          gateway: {{ pollInterval: "30s", maxStaleness: "2h" }}
        auth:
          maxClockSkew: "90s"
        """,
    )
    settings = load_settings(fxn_home, environ={})
    assert settings.node.listen_port == 9001
    assert settings.rpc_provider == ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
    assert settings.scheduler_address == [GATEWAY.lower()]
    assert settings.registry.gateway.poll_interval == 30.0
    assert settings.registry.gateway.max_staleness == 7200.0
    assert settings.auth.max_clock_skew == 90.0


def test_bad_yaml_reports_parser_line(fxn_home: Path) -> None:
    path = _write(fxn_home, "node:\n  listenPort: 8080\n  keyFile: [unclosed\n")
    problem = _only(fxn_home)
    assert problem.file == str(path)
    assert problem.line == 4  # the parser notices at the end of the stream
    assert problem.message.startswith("invalid YAML: ")
    assert "indentation and quoting" in problem.fix

    _write(fxn_home, "node:\n  listenPort: 8080\n bad: indent\n")
    problem = _only(fxn_home)
    assert problem.line == 3
    assert problem.message.startswith("invalid YAML")


def test_root_must_be_a_mapping(fxn_home: Path) -> None:
    _write(fxn_home, "- a\n- b\n")
    problem = _only(fxn_home)
    assert (problem.line, problem.message) == (1, "the file must be a mapping of keys to values")


def test_wrong_types_with_lines(fxn_home: Path) -> None:
    path = _write(
        fxn_home,
        """
        node:
          listenPort: "8080"
          publicAddress: 12
        auth:
          acceptLegacySignatures: "yes"
        logger:
          verbosity: loud
        """,
    )
    problems = _problems(fxn_home)
    assert [str(p) for p in problems] == [
        f"{path}:2: node.listenPort: Input should be a valid integer, got '8080' "
        "(write a whole number, without quotes)",
        f"{path}:3: node.publicAddress: Input should be a valid string, got 12 "
        '(write text, quoted if it looks like a number: "...")',
        f"{path}:5: auth.acceptLegacySignatures: Input should be a valid boolean, got 'yes' "
        "(write true or false, without quotes)",
        f"{path}:7: logger.verbosity: Input should be 'debug', 'info', 'warn' or 'error' "
        "(use one of 'debug', 'info', 'warn' or 'error')",
    ]


def test_unknown_keys_get_did_you_mean(fxn_home: Path) -> None:
    path = _write(
        fxn_home,
        """
        node:
          listenprot: 9000
        nonceCache:
          ttl: "10m"
          redisURL: "redis://x"
        colour: blue
        """,
    )
    problems = _problems(fxn_home)
    assert [str(p) for p in problems] == [
        f"{path}:2: unknown key `node.listenprot` (did you mean `listenPort`?)",
        f"{path}:5: unknown key `nonceCache.redisURL` (did you mean `redisUrl`?)",
        f"{path}:6: unknown key `colour` (remove it; the keys here are node, logger, rpcProvider, chainId, "
        "registry, schedulerAddress, auth, nonceCache, limits, usage, proxy, metrics, tracing, challenge)",
    ]


def test_bad_durations(fxn_home: Path) -> None:
    path = _write(
        fxn_home,
        """
        auth:
          maxClockSkew: "5 minutes"
        registry:
          gateway:
            pollInterval: 60
        """,
    )
    problems = _problems(fxn_home)
    assert [(p.line, p.message) for p in problems] == [
        (2, 'auth.maxClockSkew: "5 minutes" is not a duration'),
        (5, 'registry.gateway.pollInterval: a duration is a string such as "90s", "5m" or "1h", not 60'),
    ]
    assert problems[0].fix == 'write a number and a unit (ms, s, m, h, d), e.g. "90s"'
    assert all(p.file == str(path) for p in problems)


def test_nonce_ttl_must_cover_twice_the_skew(fxn_home: Path) -> None:
    _write(
        fxn_home,
        """
        auth:
          maxClockSkew: "5m"
        nonceCache:
          ttl: "9m"
        """,
    )
    problem = _only(fxn_home)
    assert problem.line == 4  # the nonceCache.ttl key, named first in the message
    assert problem.message.startswith("nonceCache.ttl must be at least 2 × auth.maxClockSkew")
    assert problem.fix == "raise nonceCache.ttl or lower auth.maxClockSkew"


def test_workers_need_redis(fxn_home: Path) -> None:
    _write(fxn_home, "logger:\n  format: json\nnode:\n  workers: 4\n")
    problem = _only(fxn_home)
    assert problem.line == 4
    assert "node.workers > 1 needs nonceCache.backend: redis" in problem.message


def test_bad_addresses(fxn_home: Path) -> None:
    _write(
        fxn_home,
        f"""
        registry:
          routerSmartContractAddress: "0x1234"
          static:
            gateways:
              - "{GATEWAY}"
              - "not-an-address"
        schedulerAddress: 42
        """,
    )
    problems = _problems(fxn_home)
    assert [(p.line, p.message) for p in problems] == [
        (2, "registry.routerSmartContractAddress: address '0x1234' is not 0x followed by 40 hex digits"),
        (4, "registry.static.gateways: address 'not-an-address' is not 0x followed by 40 hex digits"),
        (7, "schedulerAddress: expected an address or a list of addresses"),
    ]


def test_router_without_rpc(fxn_home: Path) -> None:
    _write(fxn_home, f'registry:\n  routerSmartContractAddress: "{GATEWAY}"\n')
    problem = _only(fxn_home)
    assert problem.line == 2
    assert problem.message == "registry.routerSmartContractAddress is set but rpcProvider is empty"
    assert problem.fix == "set an RPC URL"


def test_duplicate_keys_are_reported_and_last_one_is_pointed_at(fxn_home: Path) -> None:
    _write(fxn_home, "node:\n  listenPort: 1\nnode:\n  listenPort: x\n")
    problems = _problems(fxn_home)
    assert [(p.line, p.message) for p in problems] == [
        (3, "key `node` appears twice (first on line 1)"),
        (4, "node.listenPort: Input should be a valid integer, got 'x'"),
    ]


# --- environment overrides -----------------------------------------------------------------------------


def test_env_overrides_parse_scalars_and_lists(fxn_home: Path) -> None:
    _write(fxn_home, "node:\n  listenPort: 8080\n")
    settings = load_settings(
        fxn_home,
        environ={
            "FXN_NODE_LISTENPORT": "9000",
            "FXN_AUTH_ACCEPTLEGACYSIGNATURES": "false",
            "FXN_NONCECACHE_BACKEND": "redis",
            "FXN_NONCECACHE_TTL": "20m",
            "FXN_RPCPROVIDER": "http://a:1, http://b:2",
            "FXN_REGISTRY_ROUTERSMARTCONTRACTADDRESS": GATEWAY,
            "FXN_REGISTRY_STATIC_GATEWAYS": f"[{GATEWAY}]",
            "FXN_NODE_KEYPASSWORDFILE": "123",
            "FXN_HOME": "/ignored",
            "FXN_KEY_PASSWORD": "ignored",
            "FXN_SOMETHING_ELSE": "not a config variable",
            "OTHER": "x",
        },
    )
    assert settings.node.listen_port == 9000
    assert settings.auth.accept_legacy_signatures is False
    assert settings.nonce_cache.backend == "redis"
    assert settings.nonce_cache.ttl == 1200.0
    assert settings.rpc_provider == ["http://a:1", "http://b:2"]
    assert settings.registry.router_smart_contract_address == GATEWAY.lower()
    assert settings.registry.static.gateways == [GATEWAY.lower()]
    assert settings.node.key_password_file == "123"  # text keys stay text


def test_env_override_problems_name_the_variable(fxn_home: Path) -> None:
    _write(fxn_home, "")
    problems = _problems(
        fxn_home, {"FXN_NODE_LISTENPORT": "eighty", "FXN_NODE_LISTENPROT": "1", "FXN_NODE": "x"}
    )
    assert [str(p) for p in problems] == [
        "environment variable FXN_NODE: names no config.yaml key (unset it, or see docs/configuration.md)",
        "environment variable FXN_NODE_LISTENPROT: names no config.yaml key "
        "(did you mean FXN_NODE_LISTENPORT?)",
        "environment variable FXN_NODE_LISTENPORT: node.listenPort: Input should be a valid integer "
        "(write a whole number, without quotes)",
    ]


def test_env_override_takes_part_in_cross_checks(fxn_home: Path) -> None:
    _write(fxn_home, "nonceCache:\n  ttl: 10m\n")
    problem = _only(fxn_home, {"FXN_AUTH_MAXCLOCKSKEW": "6m"})
    assert problem.message.startswith("nonceCache.ttl must be at least 2 × auth.maxClockSkew")
    assert problem.line == 2


def test_env_override_into_non_mapping_section_is_reported(fxn_home: Path) -> None:
    _write(fxn_home, "node: 5\n")
    problem = _only(fxn_home, {"FXN_NODE_LISTENPORT": "9000"})
    assert (problem.line, problem.message) == (
        1,
        "node: Input should be a valid dictionary or instance of NodeSettings, got 5",
    )


def test_load_settings_file_reads_any_path(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("node:\n  listenPort: 7000\n")
    assert load_settings_file(path, environ={}).node.listen_port == 7000


def test_unreadable_file(fxn_home: Path) -> None:
    (fxn_home / "config.yaml").mkdir()
    problem = _only(fxn_home)
    assert problem.message.startswith("cannot read the file")


def test_configuration_doc_lists_every_override_variable() -> None:
    from function_node.config.overrides import env_paths  # the exact names the loader accepts
    from function_node.config.settings import Settings

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    rows = [line.split("|") for line in doc.splitlines() if line.startswith("| `") and "`FXN_" in line]
    documented = {
        cells[3].strip().strip("`"): cells[1].strip().strip("`") for cells in rows if len(cells) > 4
    }
    expected = {var: ".".join(str(p) for p in loc) for var, (loc, _) in env_paths(Settings).items()}
    assert documented == expected


def test_section_with_every_key_commented_out_is_absent(fxn_home: Path) -> None:
    _write(fxn_home, "registry:\n  # gateway: {}\nnode:\n  listenPort: 9\nchallenge:\n  matmul:\n")
    settings = load_settings(fxn_home, environ={})
    assert settings.registry.gateway.poll_interval == 60.0
    assert settings.challenge.matmul.max_size == 16384
