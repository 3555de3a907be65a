#!/usr/bin/env bash
# Builds the FP8 GEMM lab (main.cu says what it measures): each CUTLASS configuration in its own translation unit,
# all at once, then the driver. CUTLASS_INCLUDE: the nvidia-cutlass wheel's cutlass_library/source directory (or a
# CUTLASS checkout), holding include/ and tools/util/include/. Usage: build.sh OUTPUT_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTPUT_BINARY}
cutlass=${CUTLASS_INCLUDE:?set CUTLASS_INCLUDE to the CUTLASS source directory}
nvcc=${NVCC:-nvcc}
objs=$(mktemp -d)
flags=(-gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 --expt-relaxed-constexpr -DNDEBUG
       -I"$cutlass/include" -I"$cutlass/tools/util/include" -I"$here")
configs=$(sed -n 's/^constexpr int kLabConfigs = \([0-9]*\);.*/\1/p' "$here/cutlass_lab_gemm.h")
pids=()
for ((i = 0; i < configs; ++i)); do
  "$nvcc" "${flags[@]}" -DLAB_CONFIG=$i -c "$here/cutlass_config.cu" -o "$objs/config_$i.o" & pids+=($!)
done
"$nvcc" "${flags[@]}" -c "$here/main.cu" -o "$objs/main.o" & pids+=($!)
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ $status -eq 0 ] || { echo "build.sh: a translation unit failed to compile" >&2; exit 1; }
"$nvcc" -gencode=arch=compute_90a,code=sm_90a "$objs"/*.o -lcublasLt -lcuda -o "$out"
rm -rf "$objs"
echo "built $out"
