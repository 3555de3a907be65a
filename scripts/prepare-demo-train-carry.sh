#!/usr/bin/env bash
# Run here (PyPI reachable): downloads the wheels that tools/demo_model/train.py needs beyond torch, numpy and Pillow
# (the lines of tools/demo_model/requirements.txt marked "carry") into third_party/demo-wheels/ (git-ignored), for
# scripts/train-demo-model.sh on the GPU machine, which has no network. Name third_party/demo-wheels in the run's
# carry list. Binary wheels are fetched for CPython 3.12 on manylinux x86-64, the GPU machine's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-third_party/demo-wheels}
python=${PYTHON:-python3}
rm -rf "$dest"
mkdir -p "$dest"
mapfile -t pins < <(grep -E '^[^#].*#[[:space:]]*carry' tools/demo_model/requirements.txt | sed -E 's/[[:space:]]*#.*$//')
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dest" "${pins[@]}"
ls -l "$dest"
total=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
echo "$(ls "$dest"/*.whl | wc -l) wheels, $((total / 1000000)) MB in $dest"
if ((total > 40000000)); then
  echo "prepare-demo-train-carry: the wheels take more than 40 MB" >&2
  exit 1
fi
