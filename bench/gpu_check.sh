#!/usr/bin/env bash
# bench/gpu_check.sh OUTDIR: issue 15's check of the CUDA path of the matrix challenge, on a GPU machine
# (the device tool's nvidia-h200: python3 3.12 with torch+CUDA, no network). Never run it to fake a result:
# what it writes is what the machine measured.
#
# Prepare HERE, in the checkout the device tool sends, on a machine with PyPI: bash bench/gpu_wheels.sh
# Then one device call (timeout_s leaves room for one rerun within the session's 15 device minutes):
#   run(command="set -o pipefail; bash bench/gpu_check.sh $OUT 2>&1 | tee $OUT/console.log",
#       carry=[".whl"], timeout_s=360)
#
# Steps, each timed and limited (all within FXN_GPU_CHECK_BUDGET_S, 300 s by default); a failed step is
# recorded and the next one runs:
#   install    the wheels of .whl/ into /tmp/site (pip --no-index --no-deps); PYTHONPATH=src:/tmp/site, so
#              the working tree's code runs even if the project's wheel is older
#   env        nvidia-smi (GPU model, driver), torch/CUDA/triton versions, torch.cuda.is_available(), and
#              every requirement of the node satisfied by what is installed
#   pytest     python3 -m pytest -m gpu on the CUDA tests: generation, GEMM, digests and roots against the CPU
#              (n = 64, 256, 1024, 4096, one fixed prover), the published vectors through TorchBackend("cuda"),
#              fxn doctor's CUDA proof; on CUDA none may skip
#   bench      fxn bench matmul --backend gpu --sizes 4096,8192,16384 --repeats 5 --json (the challenge's
#              phases against a bare _int_mm of the same n, interleaved)
#   challenge  a real `fxn start` node (static lists, plaintext development key) challenged by
#              fxn challenge MATRIX_MULTIPLICATION '{"size": 8192, "backend": "gpu", "seed": ...}': both
#              rounds, 32 rows verified by the CPU verifier; the answer must come from the cuda backend
#   root       that challenge's whole Merkle root recomputed on the CPU (numpy) equals the node's
#   bare       bare torch._int_mm at the bench's sizes, CUDA events, median of 10 (a cross-check of the bench)
# OUTDIR then holds summary.md (printed last), summary.json and raw.tar.gz (every raw output); at most
# 8 files come back from the device tool, so the raw outputs travel as one archive.
# Exit 0 when every step passed and, on CUDA, every goal of issue 15 was met; 1 when a step failed; 3 when
# every step passed but a goal was missed (bench/gpu/summary.py); 2 on bad usage.
#
# Rehearsal without a GPU (bench/gpu_rehearsal.sh does this): FXN_GPU_CHECK_DEVICE=cpu runs every step on
# torch's CPU device at small sizes (the CUDA tests under FXN_GPU_TESTS_ON_CPU=1, the bench with
# --backend torch-cpu, the challenge on the node's CPU backend); FXN_GPU_CHECK_PYTHON, _WHEELS, _SITE name
# the interpreter, the wheel folder and the install target.
# The do_* functions run through `step` (bash -c under timeout), which shellcheck cannot follow:
# shellcheck disable=SC2317
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ $# -ne 1 ]; then
  echo "usage: bench/gpu_check.sh OUTDIR" >&2
  exit 2
fi
OUTDIR=$(mkdir -p "$1" && cd "$1" && pwd)
DEVICE=${FXN_GPU_CHECK_DEVICE:-cuda}
PY=${FXN_GPU_CHECK_PYTHON:-python3}
WHEELS=${FXN_GPU_CHECK_WHEELS:-$ROOT/.whl}
SITE=${FXN_GPU_CHECK_SITE:-/tmp/site}
BUDGET=${FXN_GPU_CHECK_BUDGET_S:-300}
case "$DEVICE" in
  cuda) SIZES=4096,8192,16384 BENCH_BACKEND=gpu CHALLENGE_SIZE=8192 CHALLENGE_BACKEND=gpu ;;
  cpu) SIZES=256,512 BENCH_BACKEND=torch-cpu CHALLENGE_SIZE=256 CHALLENGE_BACKEND=cpu ;;
  *)
    echo "bench/gpu_check.sh: FXN_GPU_CHECK_DEVICE must be cuda or cpu (got '$DEVICE')" >&2
    exit 2
    ;;
esac
SIZES=${FXN_GPU_CHECK_SIZES:-$SIZES}
# A fixed seed, so every run challenges the same matrices: sha256("fxn gpu_check, issue 15").
SEED=0x$(printf 'fxn gpu_check, issue 15' | sha256sum | cut -c1-64)
RAW=$OUTDIR/raw
WORK=$(mktemp -d)
rm -rf "$RAW" && mkdir -p "$RAW"
: >"$RAW/steps.tsv"
export PYTHONPATH="$ROOT/src:$SITE" PYTHONUNBUFFERED=1 COLUMNS=200 FXN_HOME="$WORK/fxn-home"
# The device machine gets a copy of the tree without .git: the source is named by a digest of src/
# (bench/gpu_wheels.sh writes the same digest of the source it built into .whl/MANIFEST.txt).
export FXN_GPU_CHECK_SOURCE
FXN_GPU_CHECK_SOURCE="src $(bash bench/gpu_wheels.sh --src-digest)"
FXN="$SITE/bin/fxn"
STARTED=$SECONDS
trap 'rm -rf "$WORK"' EXIT
helper() { "$PY" "$ROOT/bench/gpu/steps.py" "$@"; }

# step NAME LIMIT_S FUNCTION: run FUNCTION under `timeout` (its output to raw/NAME.log), record
# "NAME rc seconds limit" in raw/steps.tsv. The limit shrinks to what the budget has left (20 s are kept
# for the summary); a step with under 5 s left is not started (exit 124, as if it had timed out).
step() {
  local name=$1 limit=$2 fn=$3 left rc t0
  left=$((BUDGET - (SECONDS - STARTED) - 20))
  [ "$left" -lt "$limit" ] && limit=$left
  t0=$SECONDS
  if [ "$limit" -lt 5 ]; then
    echo "budget spent: step $name not started" >"$RAW/$name.log"
    rc=124
  else
    timeout --kill-after=5 "$limit" bash -c "$fn" >"$RAW/$name.log" 2>&1
    rc=$?
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$limit" >>"$RAW/steps.tsv"
  printf '[gpu_check %4ds] %-9s exit %-3s in %3ds (limit %ss)\n' \
    "$((SECONDS - STARTED))" "$name" "$rc" "$((SECONDS - t0))" "$limit"
  if [ "$rc" != 0 ]; then tail -n 15 "$RAW/$name.log" | sed 's/^/    | /'; fi
}

do_install() {
  set -e
  ls "$WHEELS"/*.whl >/dev/null
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --root-user-action=ignore \
    --target "$SITE" "$WHEELS"/*.whl
  cp "$WHEELS/MANIFEST.txt" "$RAW/wheels-manifest.txt" 2>/dev/null || true
  test -x "$FXN"
  "$FXN" --help >/dev/null
  echo "installed $(find "$WHEELS" -maxdepth 1 -type f -name '*.whl' | wc -l) wheels into $SITE"
}

do_env() {
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$RAW/nvidia-smi.txt" 2>&1 || return 1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit \
      --format=csv >"$RAW/nvidia-smi.csv" 2>&1 || echo "nvidia-smi --query-gpu failed (see nvidia-smi.txt)"
    cat "$RAW/nvidia-smi.csv"
  elif [ "$DEVICE" = cuda ]; then
    echo "nvidia-smi is not on PATH"
    return 1
  fi
  helper env --device "$DEVICE" --out "$RAW/env.json"
}

do_pytest() {
  local on_cpu=0 rc
  [ "$DEVICE" = cpu ] && on_cpu=1
  FXN_GPU_TESTS_ON_CPU=$on_cpu "$PY" -m pytest -m gpu -p no:cacheprovider -q -rs --timeout 200 \
    --junitxml="$RAW/pytest.xml" tests/unit/test_matmul_backends.py tests/unit/test_doctor.py
  rc=$?
  helper junit "$RAW/pytest.xml" --device "$DEVICE" || return 1
  return "$rc"
}

do_bench() {
  "$FXN" bench matmul --backend "$BENCH_BACKEND" --sizes "$SIZES" --repeats 5 --json >"$RAW/bench.json" ||
    return 1
  cat "$RAW/bench.json"
}

do_bare() {
  helper bare --device "$DEVICE" --sizes "$SIZES" --out "$RAW/bare.json"
}

do_challenge() {
  local port address key rc
  read -r port address key < <(helper home "$WORK/node-home") || return 1
  echo "$address" >"$WORK/node-address"
  "$FXN" --home "$WORK/node-home" start >"$RAW/node.log" 2>&1 &
  NODE_PID=$!
  trap 'kill $NODE_PID 2>/dev/null' EXIT
  helper wait "http://127.0.0.1:$port" --timeout 60 || return 1
  "$FXN" --home "$WORK/node-home" challenge MATRIX_MULTIPLICATION \
    "{\"size\": $CHALLENGE_SIZE, \"backend\": \"$CHALLENGE_BACKEND\", \"seed\": \"$SEED\"}" \
    --node "http://127.0.0.1:$port" --node-address "$address" --key "$key" --rows 32 \
    >"$RAW/challenge.txt" 2>&1
  rc=$?
  cat "$RAW/challenge.txt"
  kill -TERM "$NODE_PID" && wait "$NODE_PID"
  echo "node exited $?"
  [ "$rc" = 0 ] || return 1
  grep -q "VERIFIED" "$RAW/challenge.txt" || return 1
  # The answer's backend: cuda on the GPU run, the node's numpy path in the rehearsal.
  local want=cuda
  [ "$DEVICE" = cpu ] && want=cpu
  grep -E "backend / device +│ +$want /" "$RAW/challenge.txt" >/dev/null || {
    echo "the node did not answer from the $want backend"
    return 1
  }
}

do_root() {
  test -s "$WORK/node-address" || return 1
  helper root --challenge "$RAW/challenge.txt" --size "$CHALLENGE_SIZE" --seed "$SEED" \
    --prover "$(cat "$WORK/node-address")" --out "$RAW/root.json"
}

export -f helper do_install do_env do_pytest do_bench do_bare do_challenge do_root
export DEVICE PY WHEELS SITE SIZES BENCH_BACKEND CHALLENGE_SIZE CHALLENGE_BACKEND SEED RAW WORK ROOT FXN

echo "gpu_check: device $DEVICE, sizes $SIZES, source $FXN_GPU_CHECK_SOURCE, budget ${BUDGET}s, out $OUTDIR"
# Limits: what each step may take at most; together they exceed the budget, which cuts the last ones short
# rather than the whole run (expected on an H200: install 10 s, env 10, pytest 60-100 with torch.compile's
# first compilation, bench 30-50, challenge 30-50, root 10, bare 10). The bare GEMM, a cross-check, goes last.
step install 45 do_install
step env 30 do_env
step pytest 130 do_pytest
step bench 75 do_bench
step challenge 75 do_challenge
step root 30 do_root
step bare 25 do_bare

"$PY" "$ROOT/bench/gpu/summary.py" "$RAW" "$OUTDIR" --device "$DEVICE"
rc=$?
if [ ! -s "$OUTDIR/summary.md" ]; then
  echo "gpu_check: the summary could not be written (exit $rc); the steps:" >&2
  cat "$RAW/steps.tsv" >&2
  rc=1
fi
tar -czf "$OUTDIR/raw.tar.gz" -C "$OUTDIR" raw && rm -rf "$RAW"
echo "gpu_check: ${SECONDS}s in all; exit $rc"
exit "$rc"
