#!/usr/bin/env bash
# Installs the header-only cuDNN frontend (C++ graph API used by the CUDA attention op) into
# third_party/cudnn_frontend/include. It comes from the PyPI wheel nvidia-cudnn-frontend, whose include/ folder
# is the same on every platform; only the headers are kept. Idempotent: does nothing when the pinned version is
# already there.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.32.0
dest=third_party/cudnn_frontend
if [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$version" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$tmp" "nvidia-cudnn-frontend==$version"
rm -rf "$dest"
mkdir -p "$dest"
python3 - "$tmp"/nvidia_cudnn_frontend-*.whl "$dest" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith("include/") and not m.endswith("/")]
    if not members:
        sys.exit(f"fetch-cuda-headers: {wheel} has no include/ folder")
    z.extractall(dest, members)
PY
echo "$version" > "$dest/VERSION"
echo "fetch-cuda-headers: cuDNN frontend $version headers in $dest/include"
