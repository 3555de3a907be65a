#!/usr/bin/env bash
# Builds the FP8 GEMM lab (main.cu says what it measures), or with LAB=w4a8 the W4A8 lab (w4a8_main.cu): each CUTLASS
# configuration in its own translation unit, all at once, then the driver. CUTLASS_INCLUDE: the nvidia-cutlass wheel's
# cutlass_library/source directory (or a CUTLASS checkout), holding include/ and tools/util/include/.
# Usage: [LAB=w4a8] build.sh OUTPUT_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTPUT_BINARY}
cutlass=${CUTLASS_INCLUDE:?set CUTLASS_INCLUDE to the CUTLASS source directory}
nvcc=${NVCC:-nvcc}
objs=$(mktemp -d)
flags=(-gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 --expt-relaxed-constexpr -DNDEBUG
       -I"$cutlass/include" -I"$cutlass/tools/util/include" -I"$here")
if [ "${LAB:-fp8}" = w4a8 ]; then
  # CUTLASS's mixed-input utilities declare defaulted constructors __host__ __device__ (warning 20012 on each use)
  flags+=(-diag-suppress 20012)
  configs=$(sed -n 's/^constexpr int kW4a8Configs = \([0-9]*\);.*/\1/p' "$here/w4a8_lab.h")
  config_source=w4a8_config.cu config_macro=W4A8_CONFIG driver=w4a8_main.cu
else
  configs=$(sed -n 's/^constexpr int kLabConfigs = \([0-9]*\);.*/\1/p' "$here/cutlass_lab_gemm.h")
  config_source=cutlass_config.cu config_macro=LAB_CONFIG driver=main.cu
fi
pids=()
for ((i = 0; i < configs; ++i)); do
  "$nvcc" "${flags[@]}" -D$config_macro=$i -c "$here/$config_source" -o "$objs/config_$i.o" & pids+=($!)
done
"$nvcc" "${flags[@]}" -c "$here/$driver" -o "$objs/main.o" & pids+=($!)
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ $status -eq 0 ] || { echo "build.sh: a translation unit failed to compile" >&2; exit 1; }
"$nvcc" -gencode=arch=compute_90a,code=sm_90a "$objs"/*.o -lcublasLt -lcuda -o "$out"
rm -rf "$objs"
echo "built $out"
