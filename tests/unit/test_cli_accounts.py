"""``fxn accounts new | show | get | import``: exit codes and messages (SPEC §2)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from function_node.keys import load_signer, write_keystore
from function_node.signing import LocalSigner
from tests.fixtures.common import DEV_KEYS
from tests.fixtures.foundation import TEST_PASSWORD, FxnCli

PW = {"FXN_KEY_PASSWORD": TEST_PASSWORD}
IMPORTED = LocalSigner.from_hex(DEV_KEYS[3])


def test_new_writes_keystore_and_prints_address(fxn_cli: FxnCli, fxn_env: Path) -> None:
    result = fxn_cli("accounts", "new", env=PW)
    assert result.code == 0, result.stderr
    address = result.stdout.strip()
    key = fxn_env / "nodekey.json"
    assert f"wrote keystore {key} (mode 0600)" in result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert load_signer(key, TEST_PASSWORD).address == address


def test_new_plaintext_and_out(fxn_cli: FxnCli, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "k.json"
    result = fxn_cli("accounts", "new", "--plaintext", "--out", str(out))
    assert result.code == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["address"] == result.stdout.strip()
    assert set(document) == {"public_key", "address", "private_key"}


def test_new_without_password_source_is_usage_error(fxn_cli: FxnCli, fxn_env: Path) -> None:
    result = fxn_cli("accounts", "new")
    assert result.code == 2
    assert result.stderr == (
        "error: no password for the new keystore: set FXN_KEY_PASSWORD or node.keyPasswordFile, "
        "or pass --plaintext for an unencrypted key\n"
    )
    assert not (fxn_env / "nodekey.json").exists()


def test_new_refuses_existing_key_without_force(fxn_cli: FxnCli, fxn_env: Path) -> None:
    assert fxn_cli("accounts", "new", "--plaintext").code == 0
    before = (fxn_env / "nodekey.json").read_bytes()
    result = fxn_cli("accounts", "new", "--plaintext")
    assert result.code == 2
    assert result.stderr == (
        f"error: key file {fxn_env / 'nodekey.json'} already exists; pass --force to replace it "
        "(a timestamped backup is kept)\n"
    )
    assert (fxn_env / "nodekey.json").read_bytes() == before


def test_new_force_keeps_backup(fxn_cli: FxnCli, fxn_env: Path) -> None:
    first = fxn_cli("accounts", "new", "--plaintext").stdout.strip()
    result = fxn_cli("accounts", "new", "--force", env=PW)
    assert result.code == 0, result.stderr
    backups = list(fxn_env.glob("nodekey.json.bak-*"))
    assert len(backups) == 1
    assert f"kept the previous key file as {backups[0]}" in result.stderr
    assert json.loads(backups[0].read_text())["address"] == first
    assert load_signer(fxn_env / "nodekey.json", TEST_PASSWORD).address == result.stdout.strip()


def test_new_uses_key_file_from_config(fxn_cli: FxnCli, fxn_env: Path) -> None:
    (fxn_env / "config.yaml").write_text('node:\n  keyFile: "custom.json"\n')
    assert fxn_cli("accounts", "new", "--plaintext").code == 0
    assert (fxn_env / "custom.json").exists()


def test_new_with_broken_config_is_config_error(fxn_cli: FxnCli, fxn_env: Path) -> None:
    (fxn_env / "config.yaml").write_text("node:\n  keyFlie: x\n")
    result = fxn_cli("accounts", "new", "--plaintext")
    assert result.code == 2
    assert result.stderr == (
        f"error: {fxn_env / 'config.yaml'}:2: unknown key `node.keyFlie` (did you mean `keyFile`?)\n"
    )


def test_show_and_get_alias(fxn_cli: FxnCli, fxn_env: Path) -> None:
    address = fxn_cli("accounts", "new", env=PW).stdout.strip()
    for command in ("show", "get"):
        result = fxn_cli("accounts", command, env=PW)
        assert result.code == 0, result.stderr
        assert f"address:    {address}" in result.stdout
        assert "(keystore)" in result.stdout
    result = fxn_cli("accounts", "show", "--json", env=PW)
    record = json.loads(result.stdout)
    signer = load_signer(fxn_env / "nodekey.json", TEST_PASSWORD)
    assert record == {
        "address": address,
        "public_key": signer.public_key_hex,
        "file": str(fxn_env / "nodekey.json"),
        "format": "keystore",
    }


def test_show_failures(fxn_cli: FxnCli, fxn_env: Path) -> None:
    key = fxn_env / "nodekey.json"
    result = fxn_cli("accounts", "show")
    assert (result.code, result.stderr) == (
        1,
        f"error: key file {key} does not exist; create one with `fxn accounts new` or `fxn init`\n",
    )
    fxn_cli("accounts", "new", env=PW)
    result = fxn_cli("accounts", "show")
    assert result.code == 1
    assert result.stderr == (
        f"error: key file {key} is encrypted and no password was given; set FXN_KEY_PASSWORD "
        "or node.keyPasswordFile in config.yaml\n"
    )
    result = fxn_cli("accounts", "show", env={"FXN_KEY_PASSWORD": "wrong"})
    assert (result.code, result.stderr) == (1, f"error: wrong password for key file {key}\n")
    key.chmod(0o644)
    result = fxn_cli("accounts", "show", env=PW)
    assert result.code == 1
    assert f"run `chmod 600 {key}`" in result.stderr


def test_import_hex_from_stdin(fxn_cli: FxnCli, fxn_env: Path) -> None:
    result = fxn_cli("accounts", "import", stdin=DEV_KEYS[3] + "\n", env=PW)
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == IMPORTED.address
    assert load_signer(fxn_env / "nodekey.json", TEST_PASSWORD) == IMPORTED
    assert DEV_KEYS[3][2:] not in result.stdout + result.stderr


def test_import_hex_from_file_plaintext(fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path) -> None:
    source = tmp_path / "key.hex"
    source.write_text(DEV_KEYS[3][2:])  # without 0x
    result = fxn_cli("accounts", "import", "--file", str(source), "--plaintext")
    assert result.code == 0, result.stderr
    assert load_signer(fxn_env / "nodekey.json", None) == IMPORTED


def test_import_bad_hex_is_usage_error_without_echo(fxn_cli: FxnCli, fxn_env: Path) -> None:
    for bad in ("0x1234", "not hex at all", "", DEV_KEYS[3] + "00"):
        result = fxn_cli("accounts", "import", "--plaintext", stdin=bad)
        assert result.code == 2
        assert result.stderr == (
            "error: the private key read from stdin is not 32 bytes of hex (64 hex digits, 0x optional)\n"
        )
    assert not (fxn_env / "nodekey.json").exists()


def test_import_refuses_existing_key(fxn_cli: FxnCli, fxn_env: Path) -> None:
    fxn_cli("accounts", "new", "--plaintext")
    result = fxn_cli("accounts", "import", "--plaintext", stdin=DEV_KEYS[3])
    assert result.code == 2
    assert "already exists; pass --force" in result.stderr
    result = fxn_cli("accounts", "import", "--plaintext", "--force", stdin=DEV_KEYS[3])
    assert result.code == 0
    assert len(list(fxn_env.glob("nodekey.json.bak-*"))) == 1


def test_import_missing_file(fxn_cli: FxnCli, tmp_path: Path) -> None:
    result = fxn_cli("accounts", "import", "--file", str(tmp_path / "absent"))
    assert (result.code, result.stderr) == (
        2,
        f"error: cannot read {tmp_path / 'absent'}; check the path and its permissions\n",
    )


def test_import_keystore_kept_verbatim(fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path) -> None:
    source = tmp_path / "exported.json"
    write_keystore(source, IMPORTED, "their-password", scrypt_n=1024)
    result = fxn_cli(
        "accounts", "import", "--keystore", "--file", str(source), env={"FXN_KEY_PASSWORD": "their-password"}
    )
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == IMPORTED.address
    assert json.loads((fxn_env / "nodekey.json").read_text()) == json.loads(source.read_text())
    assert stat.S_IMODE((fxn_env / "nodekey.json").stat().st_mode) == 0o600


def test_import_keystore_failures(fxn_cli: FxnCli, fxn_env: Path, tmp_path: Path) -> None:
    source = tmp_path / "exported.json"
    write_keystore(source, IMPORTED, "their-password", scrypt_n=1024)
    text = source.read_text()
    result = fxn_cli("accounts", "import", "--keystore", stdin=text, env={"FXN_KEY_PASSWORD": "bad"})
    assert (result.code, result.stderr) == (1, "error: wrong password for the keystore from stdin\n")
    result = fxn_cli("accounts", "import", "--keystore", stdin=text)
    assert (result.code, result.stderr) == (
        2,
        "error: the keystore's password is needed: set FXN_KEY_PASSWORD or node.keyPasswordFile\n",
    )
    result = fxn_cli("accounts", "import", "--keystore", stdin="{oops")
    assert (result.code, result.stderr) == (2, "error: the keystore read from stdin is not valid JSON\n")
    result = fxn_cli("accounts", "import", "--keystore", stdin='{"private_key": "00"}')
    assert (result.code, result.stderr) == (
        2,
        "error: the input from stdin is not a V3 keystore (no crypto section)\n",
    )
    assert not (fxn_env / "nodekey.json").exists()


# --- prompts on a real terminal (a pseudo-terminal that becomes the child's controlling TTY) -----------


def _on_tty(home: Path, args: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, str]:
    import fcntl
    import os
    import pty
    import select
    import subprocess
    import sys
    import termios
    import time

    master, slave = pty.openpty()

    def become_session_leader_with_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {k: v for k, v in os.environ.items() if not k.startswith("FXN_")}
    env.update(FXN_HOME=str(home), FXN_KEYSTORE_SCRYPT_N="4096")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "fxn"), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=become_session_leader_with_tty,  # noqa: PLW1509 - needed to own the pseudo-terminal
        env=env,
    )
    os.close(slave)
    output = b""

    def read(until: bytes | None) -> None:
        nonlocal output
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (until is None or until not in output):
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if until is None and process.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            output += chunk

    try:
        for prompt, answer in answers:
            read(prompt)
            assert prompt in output, output
            os.write(master, answer)
        read(None)
        code = process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return code, output.decode().replace("\r\n", "\n")


def test_tty_new_asks_password_twice(tmp_path: Path) -> None:
    code, output = _on_tty(
        tmp_path,
        ["accounts", "new"],
        [(b"New key password: ", b"s3cret\n"), (b"Repeat the password: ", b"s3cret\n")],
    )
    assert code == 0, output
    assert "s3cret" not in output  # not echoed
    address = output.strip().splitlines()[-1]
    assert load_signer(tmp_path / "nodekey.json", "s3cret").address == address


def test_tty_new_refuses_different_passwords(tmp_path: Path) -> None:
    code, output = _on_tty(
        tmp_path,
        ["accounts", "new"],
        [(b"New key password: ", b"one\n"), (b"Repeat the password: ", b"two\n")],
    )
    assert code == 2
    assert "error: the two passwords differ; run the command again" in output
    assert not (tmp_path / "nodekey.json").exists()


def test_tty_import_reads_key_without_echo(tmp_path: Path) -> None:
    code, output = _on_tty(
        tmp_path,
        ["accounts", "import", "--plaintext"],
        [(b"Private key (hex, not echoed): ", DEV_KEYS[3].encode() + b"\n")],
    )
    assert code == 0, output
    assert DEV_KEYS[3][2:] not in output
    assert output.strip().splitlines()[-1] == IMPORTED.address


ARGV_REFUSAL = (
    "error: accounts import never takes the key on the command line (it shows in `ps` and your shell "
    "history; what you typed is not repeated here): pipe it on stdin (`fxn accounts import < key.txt`) or "
    "pass --file PATH, and if it was a real key, consider it exposed\n"
)


def test_import_refuses_a_key_given_as_an_argument_without_echoing_it(fxn_cli: FxnCli, fxn_env: Path) -> None:
    key = DEV_KEYS[3].removeprefix("0x")
    for args in (
        ("accounts", "import", "0x" + key),
        ("accounts", "import", key, "--plaintext"),
        ("accounts", "import", f"--key={key}"),  # an option import does not have
        ("accounts", "import", "--file", key),  # the key where the path should be
    ):
        result = fxn_cli(*args, env=PW)
        assert (result.code, result.stdout, result.stderr) == (2, "", ARGV_REFUSAL), args
        assert key not in result.stderr + result.stdout
    assert not (fxn_env / "nodekey.json").exists()
