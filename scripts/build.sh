#!/usr/bin/env bash
# Configures and builds flux2.cpp into ./build (or $FLUX2_BUILD_DIR). Extra arguments go to CMake.
# Where nvcc exists (and -DFLUX2_CUDA=OFF is not given) the CUDA backend is built, so its header-only
# dependencies are fetched first.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FLUX2_BUILD_DIR:-build}
if [[ " $* " != *" -DFLUX2_CUDA=OFF "* ]] && { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; }; then
  scripts/fetch-cuda-headers.sh
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-Release} "$@"
cmake --build "$build_dir" -j "$(nproc)"
