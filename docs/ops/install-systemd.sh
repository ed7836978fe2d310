#!/bin/sh
# Install a Function Node as a systemd service: the recipe of docs/operator-guide.md ("Running it under
# systemd"), as a script. tests/integration/test_ops_recipe.py runs it into a scratch root and checks
# every path, owner and mode below, and `systemd-analyze verify`s the unit it installs.
#
#   sudo sh docs/ops/install-systemd.sh
#
# Each step leaves what already exists alone, so running it again is safe:
#   1. a system user `fxn` (no login shell), home /var/lib/fxn
#   2. /etc/fxn (root:fxn, 0750) and /etc/fxn/node.env (root:fxn, 0640): a generated key password
#      (FXN_KEY_PASSWORD) and the place for backend API keys; systemd reads it into the node's environment
#   3. /var/lib/fxn/venv with function-node installed (skipped when FXN_BIN is an existing fxn)
#   4. `fxn init`: /var/lib/fxn/home (0700) with config.yaml, backend.yaml and the encrypted key
#      nodekey.json (0600), all then owned by fxn
#   5. /etc/systemd/system/fxn-node.service (from fxn-node.service beside this script), daemon-reload
#
# Settings, from the environment: FXN_USER (default fxn), FXN_BIN (default /var/lib/fxn/venv/bin/fxn),
# FXN_PACKAGE (what pip installs, default function-node), FXN_ROOT (a directory to install under
# instead of /, for tests and image builds; then no user is created and systemd is not told).
set -eu

FXN_USER="${FXN_USER:-fxn}"
ROOT="${FXN_ROOT:-}"
PACKAGE="${FXN_PACKAGE:-function-node}"
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=/var/lib/fxn
CONF=/etc/fxn
NODE_HOME=$STATE/home
ENV_FILE=$CONF/node.env
UNIT=/etc/systemd/system/fxn-node.service
FXN_BIN="${FXN_BIN:-$STATE/venv/bin/fxn}"

if [ "$(id -u)" != 0 ]; then
    echo "error: run this as root (sudo sh $0): it creates a system user and files owned by it" >&2
    exit 2
fi

# 1. the service user
if ! id -u "$FXN_USER" >/dev/null 2>&1; then
    if [ -n "$ROOT" ]; then
        echo "error: user $FXN_USER does not exist, and none is created under FXN_ROOT" >&2
        exit 2
    fi
    useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$FXN_USER"
    echo "created user $FXN_USER"
fi
GROUP=$(id -gn "$FXN_USER")

# 2. configuration and secrets: readable by root and the service's group only
mkdir -p "$ROOT/etc/systemd/system" "$ROOT/var/lib"  # there already on a real system: left as they are
install -d -m 0750 -o root -g "$GROUP" "$ROOT$CONF"
if [ ! -e "$ROOT$ENV_FILE" ]; then
    umask 077
    password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    {
        echo "# The Function Node's environment (systemd EnvironmentFile). Keep it root:$GROUP, mode 0640."
        echo "FXN_KEY_PASSWORD=$password"
        echo "# Backend API keys that backend.yaml names (apiKeyEnv, \${NAME} in headers), e.g.:"
        echo "# VLLM_API_KEY=..."
    } >"$ROOT$ENV_FILE"
    chown root:"$GROUP" "$ROOT$ENV_FILE"
    chmod 0640 "$ROOT$ENV_FILE"
    echo "created $ENV_FILE (a new key password; add backend API keys there)"
fi

# 3. the package
install -d -m 0750 -o "$FXN_USER" -g "$GROUP" "$ROOT$STATE"
if [ ! -x "$FXN_BIN" ]; then
    runuser -u "$FXN_USER" -- python3 -m venv "$ROOT$STATE/venv"
    runuser -u "$FXN_USER" -- "$ROOT$STATE/venv/bin/pip" install --quiet "$PACKAGE"
    FXN_BIN="$ROOT$STATE/venv/bin/fxn"
    echo "installed $PACKAGE into $STATE/venv"
fi

# 4. the node's home: `fxn init` (umask 077: every file 0600), then handed to the service user
if [ ! -e "$ROOT$NODE_HOME/nodekey.json" ]; then
    (
        set -a
        . "$ROOT$ENV_FILE"
        set +a
        FXN_HOME="$ROOT$NODE_HOME"
        export FXN_HOME
        umask 077
        cd /
        "$FXN_BIN" init
    )
    chown -R "$FXN_USER:$GROUP" "$ROOT$NODE_HOME"
fi

# 5. the unit, with this installation's fxn and user
sed -e "s#^ExecStart=/var/lib/fxn/venv/bin/fxn #ExecStart=$FXN_BIN #" \
    -e "s#^User=fxn\$#User=$FXN_USER#" -e "s#^Group=fxn\$#Group=$GROUP#" \
    "$HERE/fxn-node.service" >"$ROOT$UNIT.tmp"
chmod 0644 "$ROOT$UNIT.tmp"
mv "$ROOT$UNIT.tmp" "$ROOT$UNIT"
echo "installed $UNIT"
if [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
fi

cat <<EOF
next:
  1. edit $NODE_HOME/backend.yaml (your model servers) and $NODE_HOME/config.yaml (registry, rpcProvider);
     put backend API keys in $ENV_FILE
  2. check it as the service will run it (the same user and environment):
       sudo -u $FXN_USER sh -c 'set -a; . $ENV_FILE; FXN_HOME=$NODE_HOME exec $FXN_BIN doctor'
  3. sudo systemctl enable --now fxn-node && journalctl -u fxn-node -f
EOF
