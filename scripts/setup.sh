#!/usr/bin/env bash
# Installs everything the tests and the devnet need, and nothing twice:
# a virtualenv with the package and its dev extras, the npm packages (anvil, solc), the model servers of
# tests/backends in .venv-backends (scripts/setup-backends.sh),
# and redis-server from Debian's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMPS=.stamps
mkdir -p "$STAMPS"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi

if [ ! -f "$STAMPS/pip" ] || [ pyproject.toml -nt "$STAMPS/pip" ]; then
  echo "setup: installing Python packages"
  "$VENV/bin/pip" install -q -e ".[dev]"
  # The CPU build of torch exercises the torch matmul path (generator, digests, _int_mm) without a GPU.
  # It is optional: the tests that need it skip, with a reason, when it is absent.
  if [ -z "${FXN_SKIP_TORCH:-}" ]; then
    "$VENV/bin/pip" install -q "torch==2.13.0" 2>/dev/null || echo "setup: torch not installed (optional)"
  fi
  touch "$STAMPS/pip"
fi

if [ -f package.json ]; then
  if [ ! -f "$STAMPS/npm" ] || [ package.json -nt "$STAMPS/npm" ] || [ ! -d node_modules ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "setup: npm is required for anvil and solc; install Node.js (apt-get install nodejs npm)" >&2
      exit 1
    fi
    echo "setup: installing npm packages (anvil, solc)"
    npm install --no-audit --no-fund --loglevel=error
    touch "$STAMPS/npm"
  fi
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing redis-server from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "setup: redis-server is missing; install it (sudo apt-get install redis-server)" >&2
    exit 1
  fi
fi

# The real model servers of tests/backends (vLLM CPU, llama.cpp) are installed by `make test-backends`
# (scripts/setup-backends.sh): about 15 minutes and 3.5 GB the first time, so not for every `make test`.
