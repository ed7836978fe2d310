"""The home directory (``~/.fxn``): where config.yaml, backend.yaml and the key file live, and ``init``."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Final

from function_node.config.settings import Settings

__all__ = [
    "backends_path",
    "config_path",
    "init_home",
    "key_path",
    "template_text",
    "write_private_text",
]

CONFIG_FILE: Final = "config.yaml"
BACKEND_FILE: Final = "backend.yaml"
_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o600


def config_path(home: Path) -> Path:
    return home / CONFIG_FILE


def backends_path(home: Path) -> Path:
    return home / BACKEND_FILE


def key_path(home: Path, settings: Settings) -> Path:
    """``node.keyFile``, relative to the home directory unless absolute."""
    return home / Path(settings.node.key_file).expanduser()


def template_text(name: str) -> str:
    """The commented template of ``config.yaml`` or ``backend.yaml`` shipped with the package."""
    return resources.files("function_node.config").joinpath("templates", name).read_text(encoding="utf-8")


def init_home(
    home: Path, *, password: str | None, force: bool = False, scrypt_n: int | None = None
) -> list[Path]:
    """Create the home directory, the commented config files and a key; returns what was written.

    Existing files are kept, except with ``force``: then each is replaced and the old one kept as a
    timestamped backup beside it. ``password=None`` writes the key in the legacy plaintext form.
    The key's location is read from the (possibly pre-existing) config.yaml; a broken one raises
    ConfigError rather than guessing.
    """
    from function_node.config.loader import load_settings
    from function_node.keys import write_keystore, write_plaintext
    from function_node.signing import LocalSigner

    written: list[Path] = []
    if not home.exists():
        home.mkdir(mode=_DIR_MODE, parents=True)
        written.append(home)
    for path in (config_path(home), backends_path(home)):
        if path.exists() and not force:
            continue
        write_private_text(path, template_text(path.name), force=force)
        written.append(path)
    key = key_path(home, load_settings(home))
    if force or not key.exists():
        signer = LocalSigner(os.urandom(32))
        if password is None:
            write_plaintext(key, signer, force=force)
        else:
            write_keystore(key, signer, password, force=force, scrypt_n=scrypt_n)
        written.append(key)
    return written


def write_private_text(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` atomically with mode 0600; with ``force`` an existing file is backed up first."""
    from function_node.keys import backup_file

    if path.exists() and force:
        backup_file(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
