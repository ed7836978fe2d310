"""``fxn accounts``: create, show and import the node's key file.

Private keys are read from a file or stdin, never from the command line (argv is visible to every user
of the machine through ``ps``), and never printed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from function_node.cli._common import EXIT_USAGE, CliState, fail, state

if TYPE_CHECKING:
    from function_node.config.settings import Settings
    from function_node.signing import LocalSigner

__all__ = ["new_key_password", "register"]

_HEX_KEY: Final = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_PASSWORD_HELP = "Password: $FXN_KEY_PASSWORD, node.keyPasswordFile, or a prompt on a terminal."


# The options `new` and `import` share.
_Force = Annotated[bool, typer.Option("--force", help="Replace an existing key file (keeps a backup).")]
_Plaintext = Annotated[bool, typer.Option("--plaintext", help="Write the legacy unencrypted format.")]
_Out = Annotated[Path | None, typer.Option("--out", help="Where to write (default: node.keyFile).")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Create, show and import the node's key file.", no_args_is_help=True)
    group.command("new", help=f"Generate a new key file and print its address. {_PASSWORD_HELP}")(new)
    group.command("show", help="Print the address and public key of the key file.")(show)
    group.command("get", help="Alias of `show`.", hidden=True)(show)
    group.command(
        "import",
        help=f"Import a hex private key (from stdin or --file) or a V3 keystore. {_PASSWORD_HELP}",
        # Extra arguments are taken in and refused by import_ itself: click's own usage error would
        # print them, and a private key pasted on the command line is the usual one.
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(import_)
    app.add_typer(group, name="accounts")


def new_key_password(cli: CliState, settings: Settings) -> str:
    """The password for a new keystore: env or password file, else asked twice on a terminal."""
    from function_node.keys import resolve_password

    password = resolve_password(settings, cli.home, prompt=False)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        fail(
            "no password for the new keystore: set FXN_KEY_PASSWORD or node.keyPasswordFile, "
            "or pass --plaintext for an unencrypted key",
            EXIT_USAGE,
        )
    import getpass

    first = getpass.getpass("New key password: ")
    if getpass.getpass("Repeat the password: ") != first:
        fail("the two passwords differ; run the command again", EXIT_USAGE)
    if not first:
        fail("an empty password protects nothing; choose one, or pass --plaintext", EXIT_USAGE)
    return first


def _target(cli: CliState, settings: Settings, out: Path | None) -> Path:
    from function_node.config.home import key_path

    return out.expanduser() if out is not None else key_path(cli.home, settings)


def _write(
    cli: CliState, settings: Settings, signer: LocalSigner, path: Path, *, plaintext: bool, force: bool
) -> None:
    from function_node.keys import write_keystore, write_plaintext

    if plaintext:
        backup = write_plaintext(path, signer, force=force)
    else:
        backup = write_keystore(path, signer, new_key_password(cli, settings), force=force)
    if backup is not None:
        typer.echo(f"kept the previous key file as {backup}", err=True)
    kind = "plaintext key" if plaintext else "keystore"
    typer.echo(f"wrote {kind} {path} (mode 0600)", err=True)


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        fail(
            f"key file {path} already exists; pass --force to replace it (a timestamped backup is kept)",
            EXIT_USAGE,
        )


def new(
    ctx: typer.Context,
    force: _Force = False,
    plaintext: _Plaintext = False,
    out: _Out = None,
) -> None:
    import os

    from function_node.signing import LocalSigner

    cli = state(ctx)
    settings = cli.settings_or_defaults()
    path = _target(cli, settings, out)
    _refuse_existing(path, force)
    signer = LocalSigner(os.urandom(32))
    _write(cli, settings, signer, path, plaintext=plaintext, force=force)
    typer.echo(signer.address)


def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
    file: Annotated[Path | None, typer.Option("--file", help="Key file (default: node.keyFile).")] = None,
) -> None:
    import json

    from function_node.keys import key_file_format, load_signer, resolve_password

    cli = state(ctx)
    settings = cli.settings_or_defaults()
    path = _target(cli, settings, file)
    kind = key_file_format(path)
    password = resolve_password(settings, cli.home, prompt=True) if kind == "keystore" else None
    signer = load_signer(path, password)
    if as_json:
        record = {
            "address": signer.address,
            "public_key": signer.public_key_hex,
            "file": str(path),
            "format": kind,
        }
        typer.echo(json.dumps(record))
    else:
        typer.echo(f"address:    {signer.address}")
        typer.echo(f"public key: {signer.public_key_hex}")
        typer.echo(f"file:       {path} ({kind})")


def import_(
    ctx: typer.Context,
    *,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read the key from this file (default: stdin).")
    ] = None,
    keystore: Annotated[
        bool, typer.Option("--keystore", help="The input is a V3 keystore JSON (kept as it is).")
    ] = False,
    force: _Force = False,
    plaintext: _Plaintext = False,
    out: _Out = None,
) -> None:
    if ctx.args or (file is not None and _HEX_KEY.fullmatch(str(file))):
        fail(
            "accounts import never takes the key on the command line (it shows in `ps` and your shell "
            "history; what you typed is not repeated here): pipe it on stdin (`fxn accounts import < "
            "key.txt`) or pass --file PATH, and if it was a real key, consider it exposed",
            EXIT_USAGE,
        )
    cli = state(ctx)
    settings = cli.settings_or_defaults()
    path = _target(cli, settings, out)
    _refuse_existing(path, force)
    source = str(file) if file is not None else "stdin"
    text = _read_input(file, keystore)
    if keystore:
        _import_keystore(cli, settings, text, source=source, path=path, force=force)
        return
    from function_node.errors import SigningError
    from function_node.signing import LocalSigner

    try:
        signer = LocalSigner.from_hex(text.strip())
    except SigningError:
        fail(
            f"the private key read from {source} is not 32 bytes of hex (64 hex digits, 0x optional)",
            EXIT_USAGE,
        )
    _write(cli, settings, signer, path, plaintext=plaintext, force=force)
    typer.echo(signer.address)


def _read_input(file: Path | None, keystore: bool) -> str:
    if file is not None:
        try:
            return file.expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            fail(f"cannot read {file}; check the path and its permissions", EXIT_USAGE)
    if sys.stdin.isatty() and not keystore:
        import getpass

        return getpass.getpass("Private key (hex, not echoed): ")
    return sys.stdin.read()


def _import_keystore(
    cli: CliState, settings: Settings, text: str, *, source: str, path: Path, force: bool
) -> None:
    import json

    from function_node.keys import detect_format, resolve_password, signer_from_keystore, write_key_json

    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        fail(f"the keystore read from {source} is not valid JSON", EXIT_USAGE)
    if not isinstance(document, dict) or detect_format(document) != "keystore":
        fail(f"the input from {source} is not a V3 keystore (no crypto section)", EXIT_USAGE)
    password = resolve_password(settings, cli.home, prompt=True)
    if password is None:
        fail("the keystore's password is needed: set FXN_KEY_PASSWORD or node.keyPasswordFile", EXIT_USAGE)
    signer = signer_from_keystore(document, password, source=f"the keystore from {source}")
    backup = write_key_json(path, document, force=force)
    if backup is not None:
        typer.echo(f"kept the previous key file as {backup}", err=True)
    typer.echo(f"wrote keystore {path} (mode 0600)", err=True)
    typer.echo(signer.address)
