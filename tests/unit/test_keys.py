"""Key files: V3 keystore and legacy plaintext, permissions, backups, passwords (SPEC §2)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account

from function_node.config.settings import Settings
from function_node.errors import KeyFileError
from function_node.keys import (
    DEFAULT_SCRYPT_N,
    KeyExistsError,
    key_file_address,
    key_file_format,
    load_node_signer,
    load_signer,
    resolve_password,
    scrypt_n_from_env,
    write_keystore,
    write_plaintext,
)
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS

N = 4096
SIGNER = LocalSigner.from_hex(DEV_KEYS[2])
SECRET = DEV_KEYS[2][2:]


def _assert_no_secret(exc: BaseException) -> None:
    assert SECRET not in str(exc)
    assert SECRET.upper() not in str(exc)


def test_keystore_round_trip_is_standard_v3(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    assert write_keystore(path, SIGNER, "pw", scrypt_n=N) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    assert document["crypto"]["kdfparams"]["n"] == N
    assert SECRET not in path.read_text()
    # eth-account (as geth and MetaMask would) decrypts our file
    assert bytes(Account.decrypt(document, "pw")) == SIGNER.private_key
    assert load_signer(path, "pw") == SIGNER
    assert key_file_format(path) == "keystore"
    assert key_file_address(path) == SIGNER.address


def test_plaintext_round_trip_is_the_legacy_shape(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    write_plaintext(path, SIGNER)
    document = json.loads(path.read_text())
    assert document == {
        "public_key": SIGNER.public_key_hex,
        "address": SIGNER.address,
        "private_key": SECRET,
    }
    assert len(document["public_key"]) == 128
    assert load_signer(path, None) == SIGNER
    assert load_signer(path, "ignored") == SIGNER
    assert key_file_format(path) == "plaintext"


def test_scrypt_n_from_env() -> None:
    assert scrypt_n_from_env({}) == DEFAULT_SCRYPT_N == 262144
    assert scrypt_n_from_env({"FXN_KEYSTORE_SCRYPT_N": "4096"}) == 4096
    for bad in ("1000", "abc", "1", "-4"):
        with pytest.raises(KeyFileError, match="must be a power of two"):
            scrypt_n_from_env({"FXN_KEYSTORE_SCRYPT_N": bad})


def test_write_keystore_default_n_reads_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FXN_KEYSTORE_SCRYPT_N", "2048")
    write_keystore(tmp_path / "k.json", SIGNER, "pw")
    assert json.loads((tmp_path / "k.json").read_text())["crypto"]["kdfparams"]["n"] == 2048


def test_existing_file_is_refused_without_force(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    write_plaintext(path, SIGNER)
    before = path.read_bytes()
    with pytest.raises(KeyExistsError, match="already exists; pass --force"):
        write_keystore(path, SIGNER, "pw", scrypt_n=N)
    with pytest.raises(KeyExistsError):
        write_plaintext(path, SIGNER)
    assert path.read_bytes() == before


def test_force_keeps_timestamped_backups(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    write_plaintext(path, SIGNER)
    first = path.read_bytes()
    backup = write_keystore(path, LocalSigner.from_hex(DEV_KEYS[3]), "pw", force=True, scrypt_n=N)
    assert backup is not None
    assert backup.name.startswith("nodekey.json.bak-")
    stamp = backup.name.removeprefix("nodekey.json.bak-")
    assert len(stamp) == 15 and stamp[8] == "T" and stamp.replace("T", "").isdigit()
    assert backup.read_bytes() == first
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    second = write_plaintext(path, SIGNER, force=True)  # the same second: a distinct backup name
    assert second is not None and second != backup and second.exists() and backup.exists()
    assert load_signer(path, None) == SIGNER
    assert not list(tmp_path.glob(".nodekey.json.tmp-*"))


def test_insecure_permissions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    write_plaintext(path, SIGNER)
    for mode in (0o644, 0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(KeyFileError) as info:
            load_signer(path, None)
        assert f"run `chmod 600 {path}`" in str(info.value)
        assert f"mode {mode:04o}" in str(info.value)
        _assert_no_secret(info.value)


def test_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    write_keystore(path, SIGNER, "right", scrypt_n=N)
    with pytest.raises(KeyFileError) as info:
        load_signer(path, "wrong")
    assert str(info.value) == f"wrong password for key file {path}"


def test_keystore_without_password(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    write_keystore(path, SIGNER, "pw", scrypt_n=N)
    with pytest.raises(KeyFileError, match="is encrypted and no password was given; set FXN_KEY_PASSWORD"):
        load_signer(path, None)


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON (line 1); restore it from a backup"),
        ("[1, 2]", "is not a JSON object"),
        ('{"hello": 1}', "is neither a V3 keystore nor a legacy plaintext key"),
        ('{"private_key": 5}', "private_key must be a hex string"),
        ('{"private_key": "abcd"}', "private_key is not 32 bytes of hex"),
        ('{"private_key": "zz"}', "private_key is not 32 bytes of hex"),
        (
            json.dumps({"private_key": SECRET, "address": "0x" + "11" * 20}),
            "its address field does not match its private_key",
        ),
    ],
)
def test_corrupt_files(tmp_path: Path, content: str, message: str) -> None:
    path = _private_file(tmp_path / "nodekey.json", content)
    with pytest.raises(KeyFileError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_signer(path, "pw")
    _assert_no_secret(info.value)


def test_damaged_keystores(tmp_path: Path) -> None:
    path = tmp_path / "nodekey.json"
    write_keystore(path, SIGNER, "pw", scrypt_n=N)
    good = json.loads(path.read_text())

    def damaged(mutate: dict[str, object]) -> str:
        document = json.loads(json.dumps(good))
        document.update(mutate)
        _private_file(path, json.dumps(document))
        with pytest.raises(KeyFileError) as info:
            load_signer(path, "pw")
        _assert_no_secret(info.value)
        return str(info.value)

    assert "is not a version 3 keystore" in damaged({"version": 1})
    crypto = dict(good["crypto"])
    del crypto["ciphertext"]
    assert "is a damaged V3 keystore" in damaged({"crypto": crypto})
    crypto = dict(good["crypto"], kdf="argon9")
    assert "is a damaged V3 keystore" in damaged({"crypto": crypto})
    assert "its address field does not match its key" in damaged({"address": "11" * 20})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        KeyFileError, match="does not exist; create one with `fxn accounts new` or `fxn init`"
    ):
        load_signer(tmp_path / "absent.json", None)


def test_missing_parent_directory_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "key.json"
    write_plaintext(path, SIGNER)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_resolve_password_order(tmp_path: Path) -> None:
    password_file = _private_file(tmp_path / "pw.txt", "from-file\n")
    with_file = Settings.model_validate({"node": {"keyPasswordFile": "pw.txt"}})
    assert resolve_password(with_file, tmp_path, prompt=False, environ={"FXN_KEY_PASSWORD": "env"}) == "env"
    assert resolve_password(with_file, tmp_path, prompt=False, environ={}) == "from-file"
    assert resolve_password(Settings(), tmp_path, prompt=True, environ={}) is None  # stdin is no TTY here
    password_file.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"run `chmod 600 {password_file}`"):
        resolve_password(with_file, tmp_path, prompt=False, environ={})
    password_file.unlink()
    with pytest.raises(KeyFileError, match=r"node\.keyPasswordFile .* does not exist"):
        resolve_password(with_file, tmp_path, prompt=False, environ={})


def test_load_node_signer(fxn_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FXN_KEY_PASSWORD", raising=False)
    settings = Settings()
    write_keystore(fxn_home / "nodekey.json", SIGNER, "pw", scrypt_n=N)
    with pytest.raises(KeyFileError, match=r"is encrypted: set FXN_KEY_PASSWORD or node\.keyPasswordFile"):
        load_node_signer(fxn_home, settings)
    monkeypatch.setenv("FXN_KEY_PASSWORD", "pw")
    assert load_node_signer(fxn_home, settings) == SIGNER
    monkeypatch.setenv("FXN_KEY_PASSWORD", "nope")
    with pytest.raises(KeyFileError, match="wrong password"):
        load_node_signer(fxn_home, settings)
    monkeypatch.delenv("FXN_KEY_PASSWORD")
    write_plaintext(fxn_home / "plain.json", SIGNER)
    plain = Settings.model_validate({"node": {"keyFile": "plain.json"}})
    assert load_node_signer(fxn_home, plain) == SIGNER  # no password needed


def test_umask_does_not_widen_modes(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_plaintext(tmp_path / "k.json", SIGNER)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600
