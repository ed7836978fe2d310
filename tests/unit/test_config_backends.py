"""backend.yaml loading: line numbers, unset secrets, duplicate names (SPEC §4)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from function_node.config.loader import load_backends, load_backends_file
from function_node.errors import ConfigError, ConfigProblem


def _write(home: Path, text: str) -> Path:
    path = home / "backend.yaml"
    path.write_text(dedent(text).lstrip("\n"))
    return path


def _problems(home: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_backends(home, environ=env or {})
    return info.value.problems


VALID = """
models:
  - name: "llama"
    fxnId: 2
    upstreamModel: "meta-llama/Llama-3.1-8B-Instruct"
    backends:
      - url: "http://127.0.0.1:8000/v1"
        apiKeyEnv: "VLLM_API_KEY"
        headers: { x-api-key: "${EXTRA_KEY}", x-static: "plain" }
        maxConcurrency: 4
      - url: "http://127.0.0.1:8001"
    timeouts: { connect: "2s", firstByte: "30s", total: "5m" }
  - name: "embed"
    backends:
      - url: "https://embed.example:9000"
"""


def test_valid_file(fxn_home: Path) -> None:
    _write(fxn_home, VALID)
    config = load_backends(fxn_home, environ={"VLLM_API_KEY": "k1", "EXTRA_KEY": "k2"})
    llama = config.model("llama")
    assert llama is not None
    assert llama.fxn_id == "2"
    assert llama.forwarded_model == "meta-llama/Llama-3.1-8B-Instruct"
    assert llama.backends[0].base_url == "http://127.0.0.1:8000"
    assert llama.backends[0].max_concurrency == 4
    assert llama.timeouts.total == 300.0
    assert llama.backends[0].resolved_headers({"VLLM_API_KEY": "k1", "EXTRA_KEY": "k2"}) == {
        "x-api-key": "k2",
        "x-static": "plain",
        "Authorization": "Bearer k1",
    }
    assert [m.name for m in config.models] == ["llama", "embed"]


def test_missing_file(fxn_home: Path) -> None:
    problems = _problems(fxn_home)
    assert [str(p) for p in problems] == [
        f"{fxn_home / 'backend.yaml'}: file not found (run `fxn init` to create it)"
    ]


def test_unset_environment_variables_are_problems_with_lines(fxn_home: Path) -> None:
    path = _write(fxn_home, VALID)
    problems = _problems(fxn_home)
    assert [str(p) for p in problems] == [
        f"{path}:7: environment variable VLLM_API_KEY is not set, "
        "and backend llama (http://127.0.0.1:8000/v1) needs it "
        "(export VLLM_API_KEY=... in the node's environment)",
        f"{path}:8: environment variable EXTRA_KEY is not set, "
        "and backend llama (http://127.0.0.1:8000/v1) needs it "
        "(export EXTRA_KEY=... in the node's environment)",
    ]
    assert len(_problems(fxn_home, {"VLLM_API_KEY": "set"})) == 1


def test_duplicate_model_names_point_at_the_second(fxn_home: Path) -> None:
    path = _write(
        fxn_home,
        """
        models:
          - name: "same"
            backends: [{ url: "http://127.0.0.1:1" }]
          - name: "other"
            backends: [{ url: "http://127.0.0.1:2" }]
          - name: "same"
            backends: [{ url: "http://127.0.0.1:3" }]
        """,
    )
    assert [str(p) for p in _problems(fxn_home)] == [
        f"{path}:6: model 'same' is listed twice (model names must be unique)"
    ]


def test_field_problems_with_lines_and_hints(fxn_home: Path) -> None:
    path = _write(
        fxn_home,
        """
        models:
          - name: "m"
            backends:
              - url: "ftp://127.0.0.1"
                wieght: 2
                maxConcurrency: -1
            timeouts: { connect: "soon" }
            healthCheck: { path: "v1/models" }
          - name: "empty"
            backends: []
          - backends: [{ url: "http://x" }]
        """,
    )
    problems = _problems(fxn_home)
    assert [(p.line, p.message, p.fix) for p in problems] == [
        (
            4,
            "models.0.backends.0.url: backend url 'ftp://127.0.0.1' must be an http:// or https:// "
            "URL with a host",
            "see docs/configuration.md",
        ),
        (5, "unknown key `models.0.backends.0.wieght`", "did you mean `weight`?"),
        (
            6,
            "models.0.backends.0.maxConcurrency: Input should be greater than or equal to 0",
            "change the value to fit the limit",
        ),
        (
            7,
            'models.0.timeouts.connect: "soon" is not a duration',
            'write a number and a unit (ms, s, m, h, d), e.g. "90s"',
        ),
        (8, "models.0.healthCheck.path: healthCheck.path must start with /", "see docs/configuration.md"),
        (
            10,
            "models.1.backends: List should have at least 1 item after validation, not 0",
            "change the value to fit the limit",
        ),
        (11, "`models.2.name` is required", "add `name`"),
    ]
    assert all(p.file == str(path) for p in problems)


def test_load_backends_file_any_path(tmp_path: Path) -> None:
    path = tmp_path / "reloaded.yaml"
    path.write_text('models:\n  - name: "m"\n    backends: [{ url: "http://127.0.0.1:9" }]\n')
    assert load_backends_file(path, environ={}).models[0].name == "m"
    path.write_text("models: [\n")
    with pytest.raises(ConfigError) as info:
        load_backends_file(path, environ={})
    assert info.value.problems[0].message.startswith("invalid YAML")


def test_health_check_unhealthy_after(fxn_home: Path) -> None:
    _write(
        fxn_home,
        """
        models:
          - name: "m"
            backends: [{ url: "http://127.0.0.1:8000" }]
            healthCheck: { timeout: "10s", unhealthyAfter: 5 }
          - name: "default"
            backends: [{ url: "http://127.0.0.1:8001" }]
        """,
    )
    config = load_backends(fxn_home, environ={})
    models = {m.name: m.health_check for m in config.models}
    assert (models["m"].timeout, models["m"].unhealthy_after) == (10.0, 5)
    assert (models["default"].timeout, models["default"].unhealthy_after) == (5.0, 3)
    _write(
        fxn_home,
        """
        models:
          - name: "m"
            backends: [{ url: "http://127.0.0.1:8000" }]
            healthCheck: { unhealthyAfter: 0 }
        """,
    )
    assert [(p.line, p.message) for p in _problems(fxn_home)] == [
        (4, "models.0.healthCheck.unhealthyAfter: Input should be greater than or equal to 1")
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:s3cret@127.0.0.1:8000/v1", "http://***@127.0.0.1:8000"),
        ("https://token@api.example.com", "https://***@api.example.com"),
        ("http://:pw@[::1]:9", "http://***@[::1]:9"),
    ],
)
def test_credentials_in_a_backend_url_are_refused(fxn_home: Path, url: str, shown: str) -> None:
    path = _write(
        fxn_home,
        f"""
        models:
          - name: "m"
            backends:
              - url: "http://127.0.0.1:8001"
              - url: "{url}"
        """,
    )
    problems = _problems(fxn_home)
    assert [(p.file, p.line, p.message, p.fix) for p in problems] == [
        (
            str(path),
            5,
            f"models.0.backends.1.url: backend url {shown!r} has credentials in it (user:password@), "
            "and backend URLs appear in logs and status pages",
            "remove them from the URL and reference the secret by environment variable: apiKeyEnv, "
            'or headers: {Authorization: "Basic ${ENV_NAME}"}',
        )
    ]
    assert all("s3cret" not in str(p) and "token" not in str(p) for p in problems)
