"""Key files: the V3 keystore (scrypt) that geth and MetaMask import, and the legacy plaintext form.

Files are written with mode 0600, atomically (a temporary file renamed over the target), and an
existing key is only replaced with ``force``, after a timestamped backup. A key file that group or
others can read is refused. Messages never contain key material.

Key derivation is deliberately slow: geth's standard scrypt work factor (n = 262144) takes about a
second and 256 MiB of memory to encrypt or decrypt. ``FXN_KEYSTORE_SCRYPT_N`` lowers it for new files
(tests use 4096); the result is still a standard V3 file. Async callers run these functions in a thread.
"""

from __future__ import annotations

import getpass
import json
import os
import stat
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from function_node.config.settings import Settings
from function_node.errors import KeyFileError, SigningError
from function_node.signing import LocalSigner, normalize_address

__all__ = [
    "DEFAULT_SCRYPT_N",
    "KeyExistsError",
    "KeyFormat",
    "backup_file",
    "check_permissions",
    "detect_format",
    "key_file_address",
    "key_file_format",
    "load_node_signer",
    "load_signer",
    "read_key_json",
    "resolve_password",
    "scrypt_n_from_env",
    "signer_from_keystore",
    "write_key_json",
    "write_keystore",
    "write_plaintext",
]

DEFAULT_SCRYPT_N: Final = 262144  # geth's standard light=False work factor
_PASSWORD_VAR: Final = "FXN_KEY_PASSWORD"
_SCRYPT_VAR: Final = "FXN_KEYSTORE_SCRYPT_N"
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700
_PRIVATE_BITS: Final = 0o077

KeyFormat = Literal["keystore", "plaintext"]


class KeyExistsError(KeyFileError):
    """The key file exists and ``force`` was not given."""


def scrypt_n_from_env(environ: Mapping[str, str] | None = None) -> int:
    """The scrypt work factor for new keystores: ``FXN_KEYSTORE_SCRYPT_N`` or geth's standard."""
    env = os.environ if environ is None else environ
    raw = env.get(_SCRYPT_VAR, "").strip()
    if not raw:
        return DEFAULT_SCRYPT_N
    if not raw.isdigit() or int(raw) < 2 or int(raw) & (int(raw) - 1):
        raise KeyFileError(f"{_SCRYPT_VAR}={raw!r} must be a power of two such as 4096 or 262144")
    return int(raw)


# --- writing ------------------------------------------------------------------------------------------


def write_keystore(
    path: Path, signer: LocalSigner, password: str, *, force: bool = False, scrypt_n: int | None = None
) -> Path | None:
    """Write ``signer`` as a V3 keystore; returns the backup path if an existing file was replaced."""
    from eth_account import Account

    n = scrypt_n_from_env() if scrypt_n is None else scrypt_n
    keystore = Account.encrypt(signer.private_key, password, kdf="scrypt", iterations=n)
    return write_key_json(path, keystore, force=force)


def write_plaintext(path: Path, signer: LocalSigner, *, force: bool = False) -> Path | None:
    """Write the legacy unencrypted form ``{"public_key", "address", "private_key"}``."""
    document = {
        "public_key": signer.public_key_hex,
        "address": signer.address,
        "private_key": signer.private_key.hex(),
    }
    return write_key_json(path, document, force=force)


def write_key_json(path: Path, document: Mapping[str, Any], *, force: bool = False) -> Path | None:
    """Write a key document with mode 0600, atomically; keep a timestamped backup of a replaced file."""
    if path.exists() and not force:
        raise KeyExistsError(f"key file {path} already exists; pass --force to replace it (a backup is kept)")
    if not path.parent.exists():
        path.parent.mkdir(mode=_DIR_MODE, parents=True)
    backup = backup_file(path) if path.exists() else None
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)  # the umask may have narrowed, never widened, it
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return backup


def backup_file(path: Path) -> Path:
    """Copy ``path`` to ``<name>.bak-YYYYmmddTHHMMSS`` (UTC) beside it, mode 0600; returns the copy."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 1
    while backup.exists():  # two replacements within one second keep both backups
        backup = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
        counter += 1
    data = path.read_bytes()
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return backup


# --- reading ------------------------------------------------------------------------------------------


def check_permissions(path: Path) -> None:
    """Refuse a secret file that group or others can access, as ssh does."""
    mode = path.stat().st_mode
    if mode & _PRIVATE_BITS:
        raise KeyFileError(
            f"{path} can be read by group or others (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )


def read_key_json(path: Path) -> dict[str, Any]:
    """The JSON document of a key file, after the existence and permission checks."""
    try:
        check_permissions(path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} does not exist; create one with `fxn accounts new` or `fxn init`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise KeyFileError(f"cannot read key file {path}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyFileError(
            f"key file {path} is not valid JSON (line {exc.lineno}); restore it from a backup"
        ) from None
    if not isinstance(document, dict):
        raise KeyFileError(f"key file {path} is not a JSON object; restore it from a backup")
    return document


def detect_format(document: Mapping[str, Any]) -> KeyFormat | None:
    if "crypto" in document or "Crypto" in document:
        return "keystore"
    if "private_key" in document:
        return "plaintext"
    return None


def key_file_format(path: Path) -> KeyFormat:
    """Which format a key file is in (the permission and JSON checks included)."""
    document = read_key_json(path)
    kind = detect_format(document)
    if kind is None:
        raise KeyFileError(f"key file {path} is neither a V3 keystore nor a legacy plaintext key")
    return kind


def key_file_address(path: Path) -> str:
    """The address recorded in a key file, read without decrypting it (checksummed)."""
    from function_node.signing import to_checksum_address

    recorded = read_key_json(path).get("address")
    text = recorded.strip() if isinstance(recorded, str) else ""
    try:
        return to_checksum_address(text if text[:2].lower() == "0x" else "0x" + text)
    except SigningError:
        raise KeyFileError(f"key file {path} records no valid address") from None


def load_signer(path: Path, password: str | None) -> LocalSigner:
    """The key in ``path``, either format; KeyFileError with one sentence if it cannot be used."""
    document = read_key_json(path)
    kind = detect_format(document)
    if kind == "plaintext":
        return _signer_from_plaintext(path, document)
    if kind == "keystore":
        if password is None:
            raise KeyFileError(
                f"key file {path} is encrypted and no password was given; set {_PASSWORD_VAR} "
                "or node.keyPasswordFile in config.yaml"
            )
        return signer_from_keystore(document, password, source=f"key file {path}")
    raise KeyFileError(f"key file {path} is neither a V3 keystore nor a legacy plaintext key")


def signer_from_keystore(document: Mapping[str, Any], password: str, *, source: str) -> LocalSigner:
    """Decrypt a V3 keystore document; ``source`` names it in messages."""
    from eth_account import Account

    if document.get("version") != 3:
        raise KeyFileError(f"{source} is not a version 3 keystore; only V3 keystores are supported")
    try:
        private_key = bytes(Account.decrypt(dict(document), password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeyFileError(f"wrong password for {source}") from None
        raise KeyFileError(f"{source} is a damaged V3 keystore; restore it from a backup") from None
    except (KeyError, TypeError, AttributeError, NotImplementedError):
        raise KeyFileError(f"{source} is a damaged V3 keystore (fields missing or invalid)") from None
    signer = _signer(private_key, source)
    recorded = document.get("address")
    if isinstance(recorded, str) and recorded.strip() and not _same_address(recorded, signer.address):
        raise KeyFileError(f"{source}: its address field does not match its key; restore it from a backup")
    return signer


def _signer_from_plaintext(path: Path, document: Mapping[str, Any]) -> LocalSigner:
    raw = document.get("private_key")
    if not isinstance(raw, str):
        raise KeyFileError(f"key file {path}: private_key must be a hex string")
    try:
        signer = LocalSigner.from_hex(raw)
    except SigningError:
        raise KeyFileError(f"key file {path}: private_key is not 32 bytes of hex") from None
    recorded = document.get("address")
    if isinstance(recorded, str) and recorded.strip() and not _same_address(recorded, signer.address):
        raise KeyFileError(f"key file {path}: its address field does not match its private_key")
    return signer


def _signer(private_key: bytes, source: str) -> LocalSigner:
    try:
        return LocalSigner(private_key)
    except SigningError:
        raise KeyFileError(f"{source} holds an invalid secp256k1 private key") from None


def _same_address(recorded: str, address: str) -> bool:
    text = recorded.strip()
    try:
        return normalize_address(text if text[:2].lower() == "0x" else "0x" + text) == address.lower()
    except SigningError:
        return False


# --- passwords and the node's own key -----------------------------------------------------------------


def resolve_password(
    settings: Settings, home: Path, *, prompt: bool, environ: Mapping[str, str] | None = None
) -> str | None:
    """FXN_KEY_PASSWORD, else node.keyPasswordFile (relative to home), else a TTY prompt, else None."""
    env = os.environ if environ is None else environ
    if _PASSWORD_VAR in env:
        return env[_PASSWORD_VAR]
    if settings.node.key_password_file:
        path = (home / Path(settings.node.key_password_file).expanduser()).resolve()
        try:
            check_permissions(path)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyFileError(
                f"node.keyPasswordFile {path} does not exist; create it or clear the setting"
            ) from None
        except (OSError, UnicodeDecodeError):
            raise KeyFileError(f"cannot read node.keyPasswordFile {path}") from None
        return text.rstrip("\r\n")
    if prompt and sys.stdin.isatty():
        return getpass.getpass("Key file password: ")
    return None


def load_node_signer(home: Path, settings: Settings) -> LocalSigner:
    """The key named by ``node.keyFile``; a keystore needs a password source (env, file or TTY)."""
    from function_node.config.home import key_path

    path = key_path(home, settings)
    document = read_key_json(path)
    kind = detect_format(document)
    if kind == "plaintext":
        return _signer_from_plaintext(path, document)
    if kind is None:
        raise KeyFileError(f"key file {path} is neither a V3 keystore nor a legacy plaintext key")
    password = resolve_password(settings, home, prompt=True)
    if password is None:
        raise KeyFileError(
            f"key file {path} is encrypted: set {_PASSWORD_VAR} or node.keyPasswordFile in config.yaml "
            "(or run on a terminal to be prompted)"
        )
    return signer_from_keystore(document, password, source=f"key file {path}")
