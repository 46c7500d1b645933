#!/usr/bin/env bash
# Packaging check (CI runs it): builds the wheel, installs it into a fresh virtual
# environment, and from a folder outside the checkout runs the README's library example
# and the entry points with shipped flagfiles.
#   bash scripts/check_package.sh          (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Built from a copy without setuptools' build/ and egg-info (a stale build/lib would put
# modules removed since into the wheel) and without run folders.
mkdir "$tmp/src"
tar -C "$repo" --exclude=./build --exclude=./dist --exclude='*.egg-info' --exclude=./runs \
  --exclude=./out --exclude=./.git -cf - . | tar -xf - -C "$tmp/src"
"$python" -m pip wheel -q --no-deps -w "$tmp/dist" "$tmp/src"
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "$tmp/dist"/*.whl
# The README reads the offline digits from ../shared/data/mnist: give the outside folder
# the same neighbour.
mkdir "$tmp/work"
ln -s "$(cd "$repo/../shared" && pwd)" "$tmp/shared"
cd "$tmp/work"
export TF_CPP_MIN_LOG_LEVEL=2

echo "+ README library example (from $tmp/work)"
"$tmp/venv/bin/python" - "$repo/README.md" > example.py <<'PY'
import re, sys
text = open(sys.argv[1]).read()
section = text.split("## Use it from your own Keras code", 1)[1]
print(re.search(r"```python\n(.*?)```", section, re.S).group(1))
PY
"$tmp/venv/bin/python" example.py
test -f msd_mnist/saved_model.pb

echo "+ msd-tf-train --flagfile=flags/smoke.cfg (the shipped flagfile)"
"$tmp/venv/bin/msd-tf-train" --flagfile=flags/smoke.cfg --output_dir=smoke > train.log
test -f smoke/saved_model/saved_model.pb
echo "+ msd-tf-evaluate"
"$tmp/venv/bin/msd-tf-evaluate" --models=smoke/saved_model --dataset=mnist \
  --data_dir=../shared/data/mnist --num_examples=8 --budget=fast --attacks=pgd_linf \
  --output_dir=eval > eval.log
grep -q "All attacks" eval/results.md
echo "+ msd-tf-reproduce --dry_run (finds the shipped budget-S flagfiles)"
"$tmp/venv/bin/msd-tf-reproduce" --table=3 --scale=S --data_dir=../shared/data/mnist \
  --results_dir=repro --work_dir=repro --dry_run > reproduce.log
grep -q "flags/mnist/S/msd.cfg" reproduce.log
echo "+ msd-tf-compare, msd-tf-filters on the smoke run"
"$tmp/venv/bin/msd-tf-compare" --eval_dir=eval --pairs=smoke:smoke > compare.log
grep -q "smoke" compare.log
"$tmp/venv/bin/msd-tf-filters" --out=filters smoke/saved_model > filters.log
test -f filters/smoke.png
echo "package check passed"
