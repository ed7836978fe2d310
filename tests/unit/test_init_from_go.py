"""``fxn init --from-go DIR``: a Go node's home, in the shapes its public sources show, converted.

The Go files here are written as the Go node wrote them (its config.yaml template, the three shapes of
model_backend.yaml, its plaintext nodekey.json); the converted home is then checked by `fxn config
check`, the same validation `fxn start` runs.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from function_node.keys import load_signer, write_plaintext
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import TEST_PASSWORD, FxnCli

PW = {"FXN_KEY_PASSWORD": TEST_PASSWORD}
GO_KEY = LocalSigner.from_hex(DEV_KEYS[4])
API_KEY = "sk-go-api-key-0123456789"
BEARER = "go-bearer-token-9876543210"
# The Go node's config.yaml template, as published (its nonceCache.ttl is below what this node allows).
GO_CONFIG = """\
node:
  listenPort: 8080
logger:
  verbosity: "info"
registry:
  routerSmartContractAddress: "0x63bb292Cf4C94c4FE34756D650b66cdb34E376bB"
  gateway:
    pollInterval: "1m"
  scheduler:
    pollInterval: "1m"
  provider:
    pollInterval: "1m"
rpcProvider: "https://devnet-rpc.function.network"
schedulerAddress: "0x9EC5501b7db525648C46098CCe1Df11EbBA9c16a"
modelBackendPath: "model_backend.yaml"
nonceCache:
  ttl: "5m"
  cleanupInterval: "10m"
proxy:
  maxIdleConns: 100
  idleConnTimeout: "90s"
"""
GO_SINGLE_BACKEND = f"""\
backend_provider: "vllm"
url: "http://127.0.0.1:8000"
fxn_id: "2"
api_key: "{API_KEY}"
bearer_token: "{BEARER}"
"""


def go_home(root: Path, backend: str = GO_SINGLE_BACKEND, config: str | None = GO_CONFIG) -> Path:
    go = root / "go-home"
    go.mkdir()
    if config is not None:
        (go / "config.yaml").write_text(config)
    (go / "model_backend.yaml").write_text(backend)
    write_plaintext(go / "nodekey.json", GO_KEY)  # the Go node's format: public_key, address, private_key
    return go


def test_single_backend_home_is_converted_and_says_what_it_did(
    fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path
) -> None:
    go = go_home(tmp_path)
    result = fxn_cli("init", "--from-go", str(go), "--model", "meta/llama-3.1-8b-instruct", env=PW)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == f"read the Go node's {go / 'config.yaml'}, {go / 'model_backend.yaml'}, {go / 'nodekey.json'}"
    )
    assert f"created {fxn_env / 'nodekey.json'} (encrypted V3 keystore of the Go node's key)" in lines
    assert (
        "  note: config.yaml: nonceCache.ttl 5m raised to 10m: this node needs at least 2 × "
        "auth.maxClockSkew, or a replay could arrive after its nonce expired"
    ) in lines
    assert (
        "  note: config.yaml: no node.listenAddress: the Go node listened on every interface, so 0.0.0.0 "
        "is kept" in lines
    )
    assert f"node address: {GO_KEY.address} (the Go node's key, kept)" in lines
    assert lines[-3:] == [
        "  BACKEND_API_KEY=...   # the model_backend.yaml api_key (sent as x-api-key)",
        "  BACKEND_BEARER_TOKEN=...   # the model_backend.yaml bearer_token",
        "next: export the variables above, then `fxn config check` and `fxn start`",
    ]
    backend_text = (fxn_env / "backend.yaml").read_text()
    assert API_KEY not in backend_text and BEARER not in backend_text
    assert yaml.safe_load(backend_text) == {
        "models": [
            {
                "name": "meta/llama-3.1-8b-instruct",
                "fxnId": "2",
                "backends": [
                    {
                        "url": "http://127.0.0.1:8000",
                        "headers": {"x-api-key": "${BACKEND_API_KEY}"},
                        "apiKeyEnv": "BACKEND_BEARER_TOKEN",
                    }
                ],
            }
        ]
    }
    config = yaml.safe_load((fxn_env / "config.yaml").read_text())
    assert "modelBackendPath" not in config
    assert config["nonceCache"] == {"ttl": "10m", "cleanupInterval": "10m"}
    assert load_signer(fxn_env / "nodekey.json", TEST_PASSWORD).address == GO_KEY.address
    for name in ("config.yaml", "backend.yaml", "nodekey.json"):
        assert stat.S_IMODE((fxn_env / name).stat().st_mode) == 0o600

    unset = fxn_cli("config", "check", env=PW)
    assert unset.code == 2
    assert "environment variable BACKEND_API_KEY is not set" in unset.stderr
    secrets = {"BACKEND_API_KEY": API_KEY, "BACKEND_BEARER_TOKEN": BEARER, **PW}
    assert fxn_cli("config", "check", env=secrets).code == 0


def test_the_models_map_shapes(fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path) -> None:
    backend = f"""\
models:
  meta/llama-3.1-8b:
    url: "http://10.0.0.5:8000"
    auth:
      bearer_token: "{BEARER}"
  "7b-embed": "http://10.0.0.6:8000/v1"
"""
    go = go_home(tmp_path, backend=backend, config=None)
    result = fxn_cli("init", "--from-go", str(go), "--plaintext")
    assert result.code == 0, result.stderr
    assert yaml.safe_load((fxn_env / "backend.yaml").read_text())["models"] == [
        {
            "name": "meta/llama-3.1-8b",
            "backends": [{"url": "http://10.0.0.5:8000", "apiKeyEnv": "META_LLAMA_3_1_8B_BEARER_TOKEN"}],
        },
        {"name": "7b-embed", "backends": [{"url": "http://10.0.0.6:8000/v1"}]},
    ]
    assert f"created {fxn_env / 'nodekey.json'} (legacy plaintext, as the Go node's)" in result.stdout
    assert json.loads((fxn_env / "nodekey.json").read_text())["address"] == GO_KEY.address
    assert (
        "META_LLAMA_3_1_8B_BEARER_TOKEN=...   # the model_backend.yaml models.meta/llama-3.1-8b bearer_token"
        in (result.stdout)
    )


def test_env_file_holds_the_secrets_with_mode_0600(fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path) -> None:
    go = go_home(tmp_path)
    env_file = tmp_path / "node.env"
    result = fxn_cli("init", "--from-go", str(go), "--env-file", str(env_file), env=PW)
    assert result.code == 0, result.stderr
    assert env_file.read_text() == f"BACKEND_API_KEY={API_KEY}\nBACKEND_BEARER_TOKEN={BEARER}\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"created {env_file} (mode 0600): the backend secrets, for the node's environment" in result.stdout
    assert API_KEY not in result.stdout + result.stderr


def test_an_existing_home_is_kept_unless_forced_and_in_place_keeps_backups(
    fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path
) -> None:
    assert fxn_cli("init", "--plaintext").code == 0
    go = go_home(tmp_path)
    refused = fxn_cli("init", "--from-go", str(go), env=PW)
    assert refused.code == 2
    assert refused.stderr == (
        f"error: {fxn_env / 'config.yaml'} already exists; pass --force to replace it (each replaced file is "
        "kept as a timestamped backup), or --home DIR for a new home\n"
    )
    # The Go node's home is ~/.fxn too: convert it where it is.
    in_place = fxn_cli("--home", str(go), "init", "--from-go", str(go), "--force", env=PW)
    assert in_place.code == 0, in_place.stderr
    backups = sorted(p.name.split(".bak-")[0] for p in go.glob("*.bak-*"))
    assert backups == ["config.yaml", "nodekey.json"]
    assert load_signer(go / "nodekey.json", TEST_PASSWORD).address == GO_KEY.address
    assert "the replaced plaintext key is kept as a backup beside it; delete it once done" in in_place.stdout


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (
            'backend_provider: "custom"\nfxn_id: "2"\n',
            "backend_provider custom has no url, and this node needs the model server's URL (add url: "
            "(e.g. http://127.0.0.1:8000) to model_backend.yaml, then run again)",
        ),
        ("something: else\n", "has neither backend_provider/url nor a models: mapping"),
        ("models: [\n", "invalid YAML"),
    ],
)
def test_go_files_it_cannot_convert(
    fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path, backend: str, message: str
) -> None:
    go = go_home(tmp_path, backend=backend)
    result = fxn_cli("init", "--from-go", str(go), env=PW)
    assert result.code == 2
    assert result.stderr.startswith(f"error: {go / 'model_backend.yaml'}")
    assert message in result.stderr
    assert not (fxn_env / "config.yaml").exists()


def test_a_provider_default_url_is_assumed_and_said(fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path) -> None:
    go = go_home(tmp_path, backend='backend_provider: "ollama"\nfxn_id: "default"\n')
    result = fxn_cli("init", "--from-go", str(go), "--plaintext")
    assert result.code == 0, result.stderr
    assert "  note: model_backend.yaml: no url given; ollama's default http://127.0.0.1:11434/v1 assumed" in (
        result.stdout
    )
    assert "fxn_id 'default' dropped: fxnId is the on-chain model id, a number" in result.stdout
    model = yaml.safe_load((fxn_env / "backend.yaml").read_text())["models"][0]
    assert model == {"name": "default", "backends": [{"url": "http://127.0.0.1:11434/v1"}]}


def test_model_and_env_file_need_from_go(fxn_cli: FxnCli) -> None:
    result = fxn_cli("init", "--model", "m")
    assert (result.code, result.stderr) == (2, "error: --model and --env-file only go with --from-go DIR\n")
