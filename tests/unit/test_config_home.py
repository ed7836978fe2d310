"""The home directory, the shipped templates and init_home (SPEC §2-§4)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from function_node.config.backends import BackendConfig
from function_node.config.home import backends_path, config_path, init_home, key_path, template_text
from function_node.config.loader import load_backends, load_settings
from function_node.config.settings import Settings
from function_node.errors import ConfigError
from function_node.keys import load_signer


def _alias_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        path = (*prefix, field.alias or name)
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        inner = args[0] if getattr(annotation, "__origin__", None) is list and args else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            out.extend(_alias_paths(inner, path))
        else:
            out.append(path)
    return out


def _has_path(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if isinstance(data, list):
            data = data[0] if data else {}
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def test_config_template_names_every_settings_key() -> None:
    data = yaml.safe_load(template_text("config.yaml"))
    missing = [".".join(p) for p in _alias_paths(Settings) if not _has_path(data, p)]
    assert missing == []


def test_backend_template_names_every_backend_key() -> None:
    data = yaml.safe_load(template_text("backend.yaml"))
    missing = [".".join(p) for p in _alias_paths(BackendConfig) if not _has_path(data, p)]
    assert missing == []


def test_templates_validate_and_match_defaults() -> None:
    settings = Settings.model_validate(yaml.safe_load(template_text("config.yaml")))
    assert settings == Settings()  # the template documents the defaults, it does not change them
    backends = BackendConfig.model_validate(yaml.safe_load(template_text("backend.yaml")))
    assert backends.models[0].name == "meta/llama-3.1-8b-instruct"


def test_every_template_key_line_has_a_comment() -> None:
    # Each key says what it does: a trailing comment, or a comment line just above it.
    for name in ("config.yaml", "backend.yaml"):
        previous = ""
        for line in template_text(name).splitlines():
            text = line.strip()
            if text and not text.startswith("#") and not text.endswith(":"):  # section headers may be bare
                assert "#" in text or previous.startswith("#"), f"{name}: {line!r} has no comment"
            previous = text


def test_paths(fxn_home: Path) -> None:
    assert config_path(fxn_home) == fxn_home / "config.yaml"
    assert backends_path(fxn_home) == fxn_home / "backend.yaml"
    assert key_path(fxn_home, Settings()) == fxn_home / "nodekey.json"
    custom = Settings.model_validate({"node": {"keyFile": "/etc/fxn/key.json"}})
    assert key_path(fxn_home, custom) == Path("/etc/fxn/key.json")


def test_init_creates_everything_private(tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    written = init_home(home, password="pw", scrypt_n=4096)
    assert written == [home, home / "config.yaml", home / "backend.yaml", home / "nodekey.json"]
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "nodekey.json").stat().st_mode) == 0o600
    assert load_settings(home, environ={}) == Settings()
    assert load_backends(home, environ={}).models
    keystore = json.loads((home / "nodekey.json").read_text())
    assert keystore["crypto"]["kdfparams"]["n"] == 4096
    assert load_signer(home / "nodekey.json", "pw").address.lower() == "0x" + keystore["address"].lower()


def test_init_without_password_writes_plaintext(fxn_home: Path) -> None:
    init_home(fxn_home, password=None)
    document = json.loads((fxn_home / "nodekey.json").read_text())
    assert set(document) == {"public_key", "address", "private_key"}
    assert load_signer(fxn_home / "nodekey.json", None).address == document["address"]


def test_init_keeps_existing_files(fxn_home: Path) -> None:
    init_home(fxn_home, password=None)
    (fxn_home / "config.yaml").write_text("node:\n  listenPort: 9999\n")
    before = (fxn_home / "nodekey.json").read_bytes()
    assert init_home(fxn_home, password=None) == []
    assert (fxn_home / "nodekey.json").read_bytes() == before
    assert load_settings(fxn_home, environ={}).node.listen_port == 9999


def test_init_force_replaces_with_backups(fxn_home: Path) -> None:
    init_home(fxn_home, password=None)
    (fxn_home / "config.yaml").write_text("node:\n  listenPort: 9999\n")
    old_key = (fxn_home / "nodekey.json").read_bytes()
    written = init_home(fxn_home, password=None, force=True)
    assert written == [fxn_home / "config.yaml", fxn_home / "backend.yaml", fxn_home / "nodekey.json"]
    assert load_settings(fxn_home, environ={}).node.listen_port == 8080
    backups = sorted(p.name for p in fxn_home.iterdir() if ".bak-" in p.name)
    assert [b.split(".bak-")[0] for b in backups] == ["backend.yaml", "config.yaml", "nodekey.json"]
    key_backup = next(fxn_home.glob("nodekey.json.bak-*"))
    assert key_backup.read_bytes() == old_key
    assert stat.S_IMODE(key_backup.stat().st_mode) == 0o600


def test_init_uses_key_file_of_existing_config(fxn_home: Path) -> None:
    (fxn_home / "config.yaml").write_text('node:\n  keyFile: "keys/custom.json"\n')
    written = init_home(fxn_home, password=None)
    assert fxn_home / "keys" / "custom.json" in written
    assert stat.S_IMODE((fxn_home / "keys").stat().st_mode) == 0o700


def test_init_refuses_broken_existing_config(fxn_home: Path) -> None:
    (fxn_home / "config.yaml").write_text("node: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        init_home(fxn_home, password=None)
    assert not (fxn_home / "nodekey.json").exists()


def test_init_respects_umask_free_modes(fxn_home: Path) -> None:
    old = os.umask(0)
    try:
        init_home(fxn_home / "h", password=None)
    finally:
        os.umask(old)
    assert stat.S_IMODE((fxn_home / "h" / "nodekey.json").stat().st_mode) == 0o600
