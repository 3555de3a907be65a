#!/usr/bin/env bash
# Run here (the development machine) before a device run: puts what the GPU machine lacks into third_party/,
# which the device tool's `carry` then takes along: the cuDNN frontend headers, and copies of this machine's
# PCRE2 and ICU headers (the GPU machine has only their runtime libraries; docs/CUDA.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-cuda-headers.sh
mkdir -p third_party/device/pcre2 third_party/device/icu
cp /usr/include/pcre2.h third_party/device/pcre2/
rm -rf third_party/device/icu/unicode
cp -r /usr/include/unicode third_party/device/icu/
du -sh third_party
