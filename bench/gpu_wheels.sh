#!/usr/bin/env bash
# bench/gpu_wheels.sh [DEST | --src-digest]: the wheels bench/gpu_check.sh installs on the GPU machine, which has no network.
#
# Run it HERE (a machine with PyPI), in the checkout the device tool sends (the session's own), from its root:
#   bash bench/gpu_wheels.sh              # -> .whl/ (ignored by git; travels only when `carry` names it)
# then, with the device tool (issue 15; docs/benchmarks.md "CUDA path (issue 15)"):
#   run(command="set -o pipefail; bash bench/gpu_check.sh $OUT 2>&1 | tee $OUT/console.log",
#       carry=[".whl"], timeout_s=360)
#
# What it fetches: the project's own wheel (pip wheel --no-deps .) and every runtime dependency of it, plus
# the test plugin pytest-asyncio that pyproject's pytest settings name, resolved together for CPython 3.12 on
# manylinux x86_64 (the GPU machine's python3), at the versions installed in .venv where it has them (the
# versions the test suite passed with); then it keeps only those the GPU image lacks, i.e. whose name is not
# in bench/gpu/image-packages.txt. One version of each, checked; the total must stay under
# FXN_WHEELS_LIMIT_MIB (24) and, with the working tree that travels beside it, under the device tool's
# 64 MiB (56 here, for margin). DEST/MANIFEST.txt lists what was carried and what the image provides.
#
# FXN_WHEELS_PYTHON=3.11 builds the same set for this machine's Python instead (bench/gpu_rehearsal.sh).
# FXN_WHEELS_ALSO=name,name carries those too although the image has them: for a package whose version
# there is too old (bench/gpu_check.sh's env step names any such requirement).
set -euo pipefail
cd "$(dirname "$0")/.."

# A digest of the package's source, which names it where no .git travels (bench/gpu_check.sh prints it too).
src_digest() {
  (cd src && find . -type f \( -name '*.py' -o -name '*.json' -o -name '*.yaml' -o -name py.typed \) \
    -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-12
}
if [ "${1:-}" = --src-digest ]; then
  src_digest
  exit 0
fi

DEST=${1:-.whl}
PYVER=${FXN_WHEELS_PYTHON:-3.12}
LIMIT_MIB=${FXN_WHEELS_LIMIT_MIB:-24}
TRAVEL_LIMIT_MIB=56
PY=${PYTHON:-.venv/bin/python}
IMAGE_LIST=bench/gpu/image-packages.txt
EXTRA=(pytest-asyncio)
ABI=cp${PYVER/./}
PLATFORM=(--only-binary=:all: --python-version "$PYVER" --implementation cp --abi "$ABI"
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

if [ ! -x "$PY" ]; then
  echo "gpu_wheels: $PY is missing; run make setup first (or set PYTHON=...)" >&2
  exit 2
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }

echo "gpu_wheels: building the project's wheel"
"$PY" -m pip wheel -q --no-deps --wheel-dir "$WORK/project" . 2>&1 | quiet
PROJECT=$(ls "$WORK"/project/function_node-*.whl)

# The versions the suite was tested with; torch and the project itself are not constraints.
"$PY" -m pip freeze --exclude-editable 2>/dev/null | grep -v -i -E '^(torch|function[-_]node)[=@ ]' \
  >"$WORK/constraints.txt" || true

echo "gpu_wheels: resolving for CPython $PYVER manylinux x86_64"
"$PY" -m pip install -q --dry-run --ignore-installed --report "$WORK/report.json" "${PLATFORM[@]}" \
  --target "$WORK/unused" -c "$WORK/constraints.txt" "$PROJECT" "${EXTRA[@]}" 2>&1 | quiet

# name==version lines: the ones to carry, and the ones the image already has.
"$PY" - "$WORK/report.json" "$IMAGE_LIST" "$WORK" "${FXN_WHEELS_ALSO:-}" <<'EOF'
import json, re, sys
report, image_list, work, also = sys.argv[1:5]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
image = {norm(l.strip()) for l in open(image_list) if l.strip() and not l.startswith("#")}
image -= {norm(name.strip()) for name in also.split(",") if name.strip()}
carry, provided = [], []
for item in json.load(open(report))["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if norm(name) == "function-node":
        continue
    (provided if norm(name) in image else carry).append(f"{norm(name)}=={version}")
open(f"{work}/carry.txt", "w").write("\n".join(sorted(carry)) + "\n")
open(f"{work}/provided.txt", "w").write("\n".join(sorted(provided)) + "\n")
EOF

rm -rf "$DEST"
mkdir -p "$DEST"
cp "$PROJECT" "$DEST/"
echo "gpu_wheels: downloading $(wc -l <"$WORK/carry.txt") wheels the image lacks"
"$PY" -m pip download -q --no-deps "${PLATFORM[@]}" -d "$DEST" -r "$WORK/carry.txt" 2>&1 | quiet

# One version of each distribution, and a wheel for every pinned name.
names=$(find "$DEST" -maxdepth 1 -type f -name '*.whl' -printf '%f\n' | cut -d- -f1 | tr 'A-Z_.' 'a-z--' | sort)
dupes=$(echo "$names" | uniq -d)
if [ -n "$dupes" ]; then
  echo "gpu_wheels: two versions of: $dupes" >&2
  exit 1
fi
expected=$(( $(wc -l <"$WORK/carry.txt") + 1 ))
if [ "$(echo "$names" | wc -l)" -ne "$expected" ]; then
  echo "gpu_wheels: expected $expected wheels in $DEST, found $(echo "$names" | wc -l)" >&2
  exit 1
fi

source_id="src $(src_digest), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- src pyproject.toml 2>/dev/null || source_id="$source_id + uncommitted changes"
{
  echo "# bench/gpu_wheels.sh for CPython $PYVER ($ABI, manylinux x86_64), from source $source_id"
  echo "# carried (bench/gpu_check.sh installs these into /tmp/site):"
  basename "$PROJECT"
  cat "$WORK/carry.txt"
  echo "# provided by the GPU image (bench/gpu/image-packages.txt), resolved here at these versions:"
  cat "$WORK/provided.txt"
} >"$DEST/MANIFEST.txt"

wheels_bytes=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
tree_bytes=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
mib() { echo $(( ($1 + 1048575) / 1048576 )); }
echo "gpu_wheels: $DEST holds $(echo "$names" | wc -l) wheels, $(mib "$wheels_bytes") MiB;" \
  "the working tree that travels with it $(mib "$tree_bytes") MiB"
if [ "$wheels_bytes" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu_wheels: $DEST is over FXN_WHEELS_LIMIT_MIB=$LIMIT_MIB MiB" >&2
  exit 1
fi
if [ $((wheels_bytes + tree_bytes)) -gt $((TRAVEL_LIMIT_MIB * 1048576)) ]; then
  echo "gpu_wheels: $DEST plus the working tree is over $TRAVEL_LIMIT_MIB MiB (the device tool takes 64)" >&2
  exit 1
fi
