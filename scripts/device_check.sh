#!/usr/bin/env bash
# The one device check for a machine with a GPU (at most 8 minutes): installs
# requirements-gpu.txt into a fresh virtual environment, runs the GPU-relevant tests
# (op determinism, the MirroredStrategy step, mixed precision), then measures the MSD
# training step at the paper's settings (scripts/device_check.py) into OUT.
#   bash scripts/device_check.sh [--device=gpu|cpu] [--out=DIR] [--skip_install]
# --device=cpu: the same code path on a CPU at toy sizes (what CI-less checks can run);
# --skip_install: use the current Python (its packages must be there already).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
device=gpu
out=${OUT:-device_check}
install=1
for arg in "$@"; do
  case "$arg" in
    --device=*) device=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --skip_install) install=0 ;;
    *) echo "error: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s)
python=${PYTHON:-python3}
if [ "$install" = 1 ]; then
  requirements=$([ "$device" = gpu ] && echo requirements-gpu.txt || echo requirements.txt)
  "$python" -m venv "$out/venv"
  "$out/venv/bin/pip" install -q -r "$repo/$requirements" -r "$repo/requirements-test.txt"
  python="$out/venv/bin/python"
fi
cd "$repo"
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
echo "+ GPU-relevant tests"
"$python" -m pytest -q -p no:cacheprovider tests/test_training.py tests/test_precision.py \
  -k "mirrored or mode or precision" 2>&1 | tee "$out/tests.log" | tail -3
budget=$(( 450 - ($(date +%s) - start) ))
echo "+ measurements (${budget}s left of the 8-minute budget)"
"$python" -m scripts.device_check --device="$device" --out="$out" --budget_s="$budget" \
  2>&1 | tee "$out/device_check.log"
echo "device check done in $(( $(date +%s) - start ))s; results in $out"
