#!/usr/bin/env bash
# Installs the header-only CUDA companions from their PyPI wheels, keeping only the headers:
#  * the cuDNN frontend (C++ graph API used by the CUDA attention op), nvidia-cudnn-frontend's include/ folder, into
#    third_party/cudnn_frontend/include;
#  * with --cutlass, CUTLASS and CuTe (the FP8 GEMM lab, bench/fp8_gemm_lab/, not part of the build),
#    nvidia-cutlass's cutlass_library/source/include and tools/util/include, into
#    third_party/cutlass/{include,tools/util/include}.
# Each is the same on every platform. Idempotent: a pinned version already there is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch PACKAGE VERSION DEST STRIP PREFIX...: extracts the wheel's files under each PREFIX into DEST, each path less
# its leading STRIP.
fetch() {
  local package=$1 version=$2 dest=$3 strip=$4
  shift 4
  if [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$version" ]; then
    return 0
  fi
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$tmp/$package" "$package==$version"
  rm -rf "$dest"
  mkdir -p "$dest"
  python3 - "$tmp/$package"/*.whl "$dest" "$strip" "$@" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, strip, prefixes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if any(m.startswith(p) for p in prefixes) and not m.endswith("/")]
    if not members:
        sys.exit(f"fetch-cuda-headers: {wheel} has none of {prefixes}")
    for m in members:
        target = os.path.join(dest, m[len(strip):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(m) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
PY
  echo "$version" > "$dest/VERSION"
  echo "fetch-cuda-headers: $package $version headers in $dest"
}

fetch nvidia-cudnn-frontend 1.32.0 third_party/cudnn_frontend "" include/
if [ "${1:-}" = --cutlass ]; then
  fetch nvidia-cutlass 4.2.0.0 third_party/cutlass cutlass_library/source/ cutlass_library/source/include/ \
    cutlass_library/source/tools/util/include/
fi
