"""docs/ops/install-systemd.sh, run for real into a scratch root: every path, owner and mode it promises,
the unit it installs (``systemd-analyze verify``), and the docs naming the same files.

The service user is ``nobody`` (present on every Linux): the script creates no user under FXN_ROOT,
and a user of its own would outlive the test. It needs root, as the recipe does.
"""

from __future__ import annotations

import configparser
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from function_node.keys import load_signer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "docs" / "ops"
SCRIPT = OPS / "install-systemd.sh"
FXN = str(Path(sys.executable).parent / "fxn")
USER = "nobody"


def _skip_unless_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("the recipe creates files owned by a service user: it needs root, as it does in use")
    if shutil.which("runuser") is None:
        pytest.skip("runuser (util-linux) is not installed")


@pytest.fixture
def root() -> Iterator[Path]:
    _skip_unless_possible()
    # Not under pytest's tmp_path: that is private to root, and the service user must reach its home.
    path = Path(tempfile.mkdtemp(prefix="fxn-ops-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def install(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FXN_")}
    env.update(FXN_ROOT=str(root), FXN_USER=USER, FXN_BIN=FXN, FXN_KEYSTORE_SCRYPT_N="1024")
    return subprocess.run(
        ["sh", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def owner_mode(path: Path) -> tuple[str, str, int]:
    info = path.stat()
    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name, stat.S_IMODE(info.st_mode)


def unit_of(path: Path) -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keep systemd's key case
    unit.read_string(path.read_text())
    return unit["Service"]


def test_the_recipe_installs_what_it_says(root: Path) -> None:
    group = grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name
    first = install(root)
    assert first.returncode == 0, first.stderr
    assert owner_mode(root / "etc/fxn") == ("root", group, 0o750)
    env_file = root / "etc/fxn/node.env"
    assert owner_mode(env_file) == ("root", group, 0o640)
    [password] = re.findall(r"^FXN_KEY_PASSWORD=([0-9a-f]{48})$", env_file.read_text(), re.MULTILINE)
    assert owner_mode(root / "var/lib/fxn") == (USER, group, 0o750)
    home = root / "var/lib/fxn/home"
    assert owner_mode(home) == (USER, group, 0o700)
    for name in ("config.yaml", "backend.yaml", "nodekey.json"):
        assert owner_mode(home / name) == (USER, group, 0o600), name
    address = load_signer(home / "nodekey.json", password).address

    service = unit_of(root / "etc/systemd/system/fxn-node.service")
    assert (service["User"], service["Group"]) == (USER, group)
    assert service["ExecStart"] == f"{FXN} start"
    assert service["EnvironmentFile"] == "/etc/fxn/node.env"
    assert (root / service["EnvironmentFile"].lstrip("/")).exists()
    assert service["Environment"] == "FXN_HOME=/var/lib/fxn/home"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["Restart"] == "on-failure"
    assert service["ReadWritePaths"] == "/var/lib/fxn"

    again = install(root)  # idempotent: the password and the key stay
    assert again.returncode == 0, again.stderr
    assert f"FXN_KEY_PASSWORD={password}" in env_file.read_text()
    assert load_signer(home / "nodekey.json", password).address == address


def test_the_service_user_can_run_the_installed_home(root: Path) -> None:
    runs = subprocess.run(["runuser", "-u", USER, "--", FXN, "--version"], capture_output=True, check=False)
    if runs.returncode != 0:
        pytest.skip(f"{USER} cannot execute this checkout's Python ({runs.stderr.decode().strip()})")
    assert install(root).returncode == 0
    env_file, home = root / "etc/fxn/node.env", root / "var/lib/fxn/home"
    check = subprocess.run(  # as the service runs it: its user, its environment file, its home
        ["runuser", "-u", USER, "--", "sh", "-c", f"set -a; . {env_file}; exec {FXN} config check"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "FXN_HOME": str(home), "FXN_KEYSTORE_SCRYPT_N": "1024"},
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_systemd_analyze_verifies_the_installed_unit(root: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    assert install(root).returncode == 0
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(root / "etc/systemd/system/fxn-node.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The one remark allowed is about the test's stand-in user (the real unit runs as fxn).
    remarks = [
        line
        for line in (verify.stdout + verify.stderr).splitlines()
        if "Special user nobody configured" not in line
    ]
    assert (verify.returncode, remarks) == (0, [])


def test_the_docs_name_the_files_the_recipe_writes() -> None:
    """One environment file, one path, everywhere an operator reads about it."""
    texts = {
        path: path.read_text()
        for path in (REPO / "docs/operator-guide.md", OPS / "fxn-node.service", SCRIPT, REPO / "README.md")
    }
    for path, text in texts.items():
        named = set(re.findall(r"/etc/fxn[\w./-]*", text))
        assert named <= {"/etc/fxn", "/etc/fxn/node.env"}, (path, named)
        assert "key-password" not in text, path
    assert "install-systemd.sh" in texts[REPO / "docs/operator-guide.md"]
    assert "RestartPreventExitStatus=2" in texts[REPO / "docs/operator-guide.md"]
