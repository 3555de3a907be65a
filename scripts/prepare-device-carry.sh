#!/usr/bin/env bash
# Run here (the development machine) before a device run: puts what the GPU machine lacks into third_party/,
# which the device tool's `carry` then takes along: the cuDNN frontend headers, copies of this machine's PCRE2, ICU
# and libwebp headers (the GPU machine has only their runtime libraries, if that; docs/CUDA.md), this machine's
# libwebp for where it has none, a header-only cpp-httplib of the Debian package's version (0.11.4) from
# $FLUX2_HTTPLIB_SOURCE (a checkout of cpp-httplib at v0.11.4) for the server there, and with FLUX2_CARRY_CUTLASS=1
# the CUTLASS headers the GEMM labs include. All of it is packed into third_party/device-carry.tar.xz (about 1.2 MB,
# 1.9 MB with CUTLASS's, instead of 9 or 24 MB): the repository with its test data and the demo model is about 61 MiB
# of the 64 MiB a device call may carry, so carry that one file; scripts/device-test.sh unpacks it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-cuda-headers.sh ${FLUX2_CARRY_CUTLASS:+--cutlass}
mkdir -p third_party/device/pcre2 third_party/device/icu
cp /usr/include/pcre2.h third_party/device/pcre2/
rm -rf third_party/device/icu/unicode
cp -r /usr/include/unicode third_party/device/icu/
mkdir -p third_party/device/webp/include/webp third_party/device/webp/lib
cp /usr/include/webp/*.h third_party/device/webp/include/webp/
cp -L /usr/lib/x86_64-linux-gnu/libwebp.so.7 third_party/device/webp/lib/
if [ -n "${FLUX2_HTTPLIB_SOURCE:-}" ]; then
  mkdir -p third_party/device/httplib
  git -C "$FLUX2_HTTPLIB_SOURCE" show v0.11.4:httplib.h > third_party/device/httplib/httplib.h
elif [ ! -f third_party/device/httplib/httplib.h ]; then
  # The GPU machine has no cpp-httplib package: without this header its CMake configure stops (the server is part
  # of the build), and the whole device call is lost.
  echo "warning: no third_party/device/httplib/httplib.h and FLUX2_HTTPLIB_SOURCE is unset: the GPU machine's" \
    "build will not configure. Point FLUX2_HTTPLIB_SOURCE at a git checkout of yhirose/cpp-httplib (tag v0.11.4)." >&2
fi
# Of CUTLASS, only the headers the GEMM labs' translation units include (nvcc -M): half its 27 MB, and the whole
# of it would take a call past its 64 MiB.
cutlass_headers=()
if [ -n "${FLUX2_CARRY_CUTLASS:-}" ]; then
  lab=bench/fp8_gemm_lab
  flags=("-gencode=arch=compute_90a,code=sm_90a" -std=c++17 --expt-relaxed-constexpr -Ithird_party/cutlass/include
         -Ithird_party/cutlass/tools/util/include "-I$lab")
  mapfile -t cutlass_headers < <(
    for unit in "w4a8_config.cu -DW4A8_CONFIG=0" "w4a8_main.cu" "cutlass_config.cu -DLAB_CONFIG=0" "main.cu"; do
      read -r source define <<<"$unit"
      # shellcheck disable=SC2086
      nvcc "${flags[@]}" $define -M "$lab/$source"
    done | tr -s ' \134' '\n' | grep '^third_party/cutlass/' | sort -u)
fi
tar cJf third_party/device-carry.tar.xz third_party/cudnn_frontend third_party/device "${cutlass_headers[@]}"
du -sh third_party third_party/device-carry.tar.xz
