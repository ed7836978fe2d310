"""``fxn init``: create the home directory, or (``--from-go DIR``) convert a Go node's home into it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from function_node.cli._common import EXIT_USAGE, CliState, fail, state

if TYPE_CHECKING:
    from function_node.config.go_import import GoHome

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command(
        "init",
        help="Create the home directory: commented config.yaml, backend.yaml and a new key "
        "(--from-go DIR: convert a Go node's home instead).",
    )(init)


def init(
    ctx: typer.Context,
    *,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing files, keeping timestamped backups.")
    ] = False,
    plaintext: Annotated[
        bool, typer.Option("--plaintext", help="Write the key in the legacy unencrypted format.")
    ] = False,
    from_go: Annotated[
        Path | None,
        typer.Option(
            "--from-go",
            help="A Go node's home (config.yaml, model_backend.yaml, nodekey.json) to convert.",
            file_okay=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="With --from-go: the model name for a single-backend model_backend.yaml."
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="With --from-go: also write the backend secrets as NAME=value lines here (mode 0600), "
            "e.g. for systemd's EnvironmentFile.",
        ),
    ] = None,
) -> None:
    cli = state(ctx)
    if from_go is not None:
        _from_go(cli, from_go.expanduser(), model=model, env_file=env_file, force=force, plaintext=plaintext)
        return
    if model is not None or env_file is not None:
        fail("--model and --env-file only go with --from-go DIR", EXIT_USAGE)
    _init(cli, force=force, plaintext=plaintext)


def _init(cli: CliState, *, force: bool, plaintext: bool) -> None:
    from function_node.cli.accounts import new_key_password
    from function_node.config.home import init_home, key_path

    settings = cli.settings_or_defaults()
    key = key_path(cli.home, settings)
    password: str | None = None
    if not plaintext and (force or not key.exists()):
        password = new_key_password(cli, settings)
    written = init_home(cli.home, password=password, force=force)
    for path in written:
        typer.echo(f"created {path}")
    kept = [p for p in (cli.home / "config.yaml", cli.home / "backend.yaml", key) if p not in written]
    for path in kept:
        typer.echo(f"kept {path} (already there; --force replaces it and keeps a backup)")
    if key in written:
        from function_node.keys import key_file_address

        typer.echo(f"node address: {key_file_address(key)}")
    typer.echo("next: edit backend.yaml, then run `fxn config check`")


def _from_go(
    cli: CliState, source: Path, *, model: str | None, env_file: Path | None, force: bool, plaintext: bool
) -> None:
    from function_node.config.go_import import read_go_home
    from function_node.config.home import backends_path, config_path
    from function_node.keys import load_signer

    go = read_go_home(source, model_name=model)  # ConfigError: exit 2, naming the Go file
    signer = load_signer(go.key_file, None)  # the Go key is plaintext; refused if others can read it
    targets = [config_path(cli.home), backends_path(cli.home), cli.home / "nodekey.json"]
    if env_file is not None:
        targets.append(env_file.expanduser())
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        fail(
            f"{existing[0]} already exists; pass --force to replace it (each replaced file is kept as a "
            "timestamped backup), or --home DIR for a new home",
            EXIT_USAGE,
        )
    typer.echo(f"read the Go node's {', '.join(str(p) for p in go.sources)}")
    password = None if plaintext else _new_password(cli)
    _write_home(cli.home, go, signer, password)
    for note in go.notes:
        typer.echo(f"  note: {note}")
    typer.echo(f"node address: {signer.address} (the Go node's key, kept)")
    if go.secrets:
        _report_secrets(go, env_file)
    _check_converted(cli.home, go)


def _new_password(cli: CliState) -> str:
    from function_node.cli.accounts import new_key_password
    from function_node.config.settings import Settings

    return new_key_password(cli, Settings())


def _write_home(home: Path, go: GoHome, signer: Any, password: str | None) -> None:
    from function_node.config.home import backends_path, config_path, write_private_text
    from function_node.keys import write_keystore, write_plaintext

    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    header = f"# converted by `fxn init --from-go` from the Go node's files in {go.key_file.parent}\n"
    for path, doc in ((config_path(home), go.config), (backends_path(home), go.backends)):
        write_private_text(path, header + _yaml_dump(doc), force=True)
        typer.echo(f"created {path}")
    key = home / "nodekey.json"
    if password is None:
        write_plaintext(key, signer, force=True)
        typer.echo(f"created {key} (legacy plaintext, as the Go node's)")
    else:
        write_keystore(key, signer, password, force=True)
        typer.echo(f"created {key} (encrypted V3 keystore of the Go node's key)")
    if key.resolve() != go.key_file.resolve():
        typer.echo(
            f"  note: the Go key file {go.key_file} still holds the key in plaintext; delete it once done"
        )
    else:
        typer.echo("  note: the replaced plaintext key is kept as a backup beside it; delete it once done")


def _yaml_dump(doc: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _report_secrets(go: GoHome, env_file: Path | None) -> None:
    if env_file is not None:
        from function_node.config.home import write_private_text

        lines = "".join(f"{s.env}={s.value}\n" for s in go.secrets)
        write_private_text(env_file.expanduser(), lines, force=True)
        typer.echo(f"created {env_file} (mode 0600): the backend secrets, for the node's environment")
        return
    typer.echo("secrets are not written into backend.yaml; export these in the node's environment:")
    for secret in go.secrets:
        typer.echo(f"  {secret.env}=...   # the {secret.source}")


def _check_converted(home: Path, go: GoHome) -> None:
    """What `fxn config check` will say once the secrets are exported (they may not be, here)."""
    import os

    from function_node.config.preflight import check_start
    from function_node.errors import ConfigError

    environ = {**os.environ, **{s.env: s.value for s in go.secrets}}
    try:
        check_start(home, environ=environ, interactive=True)
    except ConfigError as exc:
        typer.echo("the converted files need these fixes before `fxn start`:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    typer.echo(
        "next: export the variables above, then `fxn config check` and `fxn start`"
        if go.secrets
        else "next: `fxn config check`, then `fxn start`"
    )
