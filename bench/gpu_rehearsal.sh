#!/usr/bin/env bash
# bench/gpu_rehearsal.sh OUTDIR: bench/gpu_check.sh end to end on THIS machine, without a GPU, before any
# device time is spent (issue 15). It proves the script's plumbing and the wheel set, never the GPU:
#
# 1. a stand-in for the GPU image: a fresh venv of .venv's Python that sees, of .venv's packages, exactly
#    those named in bench/gpu/image-packages.txt (torch's CPU build among them), and nothing else;
# 2. the same wheel set as .whl/, built for this Python (FXN_WHEELS_PYTHON=3.11 bench/gpu_wheels.sh);
# 3. bench/gpu_check.sh with FXN_GPU_CHECK_DEVICE=cpu on that stand-in: install into a temporary target,
#    env, pytest -m gpu (the CUDA tests' assertions on torch's CPU device), the bench (--backend torch-cpu),
#    the bare GEMM, a real node challenged by fxn challenge, the whole root on the CPU, the summary;
# 4. the real .whl/ (cp312, as the GPU machine gets it) installed with a CPython 3.12 here, beside cp312
#    wheels of what the image provides, then every function_node module imported, `fxn --help`, and every
#    requirement checked (bench/gpu/steps.py deps): a wheel missing from .whl/ or built for the wrong
#    Python fails here.
# Writes OUTDIR/cpu/ (gpu_check.sh's output) and OUTDIR/cp312.log; exit 0 when both passed.
#   bash bench/gpu_wheels.sh && bash bench/gpu_rehearsal.sh /tmp/fxn-gpu-rehearsal
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ $# -ne 1 ]; then
  echo "usage: bench/gpu_rehearsal.sh OUTDIR" >&2
  exit 2
fi
OUTDIR=$(mkdir -p "$1" && cd "$1" && pwd)
VENV_PY=$ROOT/.venv/bin/python
PY312=${FXN_REHEARSAL_PY312:-python3.12}
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12; do
  [ -z "${FXN_REHEARSAL_PY312:-}" ] && [ -x "$candidate" ] && PY312=$candidate
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ ! -f .whl/MANIFEST.txt ]; then
  echo "gpu_rehearsal: no .whl/ here; run bash bench/gpu_wheels.sh first" >&2
  exit 2
fi

echo "gpu_rehearsal: 1. the stand-in image (.venv's packages named in bench/gpu/image-packages.txt)"
BASE_PY=$("$VENV_PY" -c 'import sys; print(sys._base_executable)')
"$BASE_PY" -m venv "$WORK/image" || exit 1
"$VENV_PY" - "$WORK/image" bench/gpu/image-packages.txt <<'EOF' || exit 1
import re, sys, sysconfig
from importlib import metadata
from pathlib import Path
image, names = Path(sys.argv[1]), sys.argv[2]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
wanted = {norm(l.strip()) for l in open(names) if l.strip() and not l.startswith("#")}
site = Path(sysconfig.get_paths()["purelib"])
farm = image / "image-site"
farm.mkdir()
linked = []
for dist in metadata.distributions(path=[str(site)]):
    if norm(dist.metadata["Name"]) not in wanted:
        continue
    linked.append(dist.metadata["Name"])
    for top in {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")}:
        if not (farm / top).exists() and (site / top).exists() and top != "__pycache__":
            (farm / top).symlink_to(site / top)
target = next((image / "lib").glob("python3*/site-packages"))
(target / "fxn-image.pth").write_text(str(farm) + "\n")
print(f"{len(linked)} of .venv's distributions: {', '.join(sorted(linked))}")
EOF

echo "gpu_rehearsal: 2. the wheel set for this Python"
FXN_WHEELS_PYTHON=$("$VENV_PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")') \
  bash bench/gpu_wheels.sh "$WORK/whl-local" 2>&1 | grep '^gpu_wheels' || exit 1

echo "gpu_rehearsal: 3. bench/gpu_check.sh on torch's CPU device"
FXN_GPU_CHECK_DEVICE=cpu FXN_GPU_CHECK_PYTHON="$WORK/image/bin/python" \
  FXN_GPU_CHECK_WHEELS="$WORK/whl-local" FXN_GPU_CHECK_SITE="$WORK/site" \
  bash bench/gpu_check.sh "$OUTDIR/cpu"
check_rc=$?

echo "gpu_rehearsal: 3b. the same with FXN_GPU_CHECK_DEVICE=cuda, where there is none: every step after"
echo "    install must fail, be recorded, and not stop the next; the exit code must be 1"
FXN_GPU_CHECK_DEVICE=cuda FXN_GPU_CHECK_SIZES=256 FXN_GPU_CHECK_PYTHON="$WORK/image/bin/python" \
  FXN_GPU_CHECK_WHEELS="$WORK/whl-local" FXN_GPU_CHECK_SITE="$WORK/site" \
  bash bench/gpu_check.sh "$OUTDIR/no-gpu" >"$OUTDIR/no-gpu.log" 2>&1
no_gpu_rc=$?
grep '^\[gpu_check' "$OUTDIR/no-gpu.log"
"$VENV_PY" - "$OUTDIR/no-gpu/summary.json" "$no_gpu_rc" <<'EOF' || check_rc=1
import json, sys
summary, rc = json.load(open(sys.argv[1])), int(sys.argv[2])
expected = ["env", "pytest", "bench", "challenge", "root", "bare"]
assert rc == 1 and summary["verdict"] == "FAILED", (rc, summary["verdict"])
assert summary["failedSteps"] == expected, summary["failedSteps"]
assert len(summary["missedGoals"]) == 4, summary["missedGoals"]
print("no GPU: exit 1, failed steps", ", ".join(expected), "and 4 goals missed, as expected")
EOF

echo "gpu_rehearsal: 4. .whl/ (cp312) with $PY312"
(
  set -e
  "$PY312" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version'
  sed -n '/^# provided by the GPU image/,$p' .whl/MANIFEST.txt | grep -v '^#' >"$WORK/provided.txt"
  "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --abi cp312 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$WORK/image-cp312" -r "$WORK/provided.txt" 2>&1 | grep -v "is ignored: it is neither" || true
  "$PY312" -m pip install -q --no-index --no-deps --no-compile --root-user-action=ignore --target "$WORK/site312" \
    "$WORK"/image-cp312/*.whl .whl/*.whl
  export PYTHONPATH="$WORK/site312"
  cd "$WORK"  # not the checkout: what runs is the installed wheel, not src/
  "$PY312" "$ROOT/bench/gpu/steps.py" deps
  "$PY312" - <<'EOF'
import importlib, pkgutil, function_node
names = [m.name for m in pkgutil.walk_packages(function_node.__path__, "function_node.")]
for name in names:
    importlib.import_module(name)
print(f"imported {len(names)} modules of function_node from {function_node.__file__}")
EOF
  "$WORK/site312/bin/fxn" --help >/dev/null
  echo "fxn --help: ok"
) >"$OUTDIR/cp312.log" 2>&1
cp312_rc=$?
cat "$OUTDIR/cp312.log"

echo "gpu_rehearsal: gpu_check.sh (cpu) exit $check_rc; cp312 wheels exit $cp312_rc"
[ "$check_rc" = 0 ] && [ "$cp312_rc" = 0 ]
