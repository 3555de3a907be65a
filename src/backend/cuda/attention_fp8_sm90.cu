// Host side of the sm_90a FP8 attention (attention_fp8_sm90.cuh): the probe, the TMA descriptors, the launches.
#include <cuda.h>
#include <cudaTypedefs.h>

#include <cmath>
#include <map>
#include <mutex>

#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/attention_fp8_sm90.cuh"
#include "backend/cuda/attention_fp8_sm90.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace flux2::cuda {

namespace {
// The KV tile: 192 tokens divide FLUX.2's 4608 (1024²) and 16896 (2048²) exactly, and ran 9-11% faster than 128
// on the H200; 224 wastes most of a last tile at 4608 (docs/PERFORMANCE.md).
constexpr int kBN = 192;
constexpr int kVtChunk = 64;  // tokens a transposing CTA takes: Lp is a multiple of it

int64_t padded_length(int64_t L) { return (L + kVtChunk - 1) / kVtChunk * kVtChunk; }

PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
    static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        PFN_cuTensorMapEncodeTiled_v12000 f = nullptr;
        look_up_driver("cuTensorMapEncodeTiled", 12000, f);
        return f;
    }();
    return fn;
}

CUtensorMap byte_map(const void* base, int rank, const cuuint64_t* dims, const cuuint64_t* strides,
                     const cuuint32_t* box, CUtensorMapSwizzle swizzle, const char* what) {
    CUtensorMap map;
    const cuuint32_t element_strides[4] = {1, 1, 1, 1};
    const CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, rank, const_cast<void*>(base), dims, strides,
                                      box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    check(r == CUDA_SUCCESS, "FP8 attention: cannot describe ", what, " for TMA (CUresult ", static_cast<int>(r), ")");
    return map;
}
}  // namespace

bool attention_fp8_sm90_available() {
    // Per device: a process may drive GPUs of different architectures (--gpus), and a build holding sm_90a next to
    // other architectures runs the kernel's empty body on those.
    static std::mutex mutex;
    static std::map<int, bool> probed;
    int device = 0;
    FLUX2_CUDA_CHECK(cudaGetDevice(&device));
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = probed.find(device); it != probed.end()) return it->second;
    int major = 0, minor = 0, host = 0;
    FLUX2_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    FLUX2_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    if (major == 9 && minor == 0) {
        int* flag = nullptr;
        FLUX2_CUDA_CHECK(cudaMalloc(&flag, sizeof(int)));
        fa8::compiled_in_kernel<<<1, 1>>>(flag);
        const cudaError_t launched = cudaGetLastError();
        if (launched == cudaSuccess) FLUX2_CUDA_CHECK(cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost));
        FLUX2_CUDA_CHECK(cudaFree(flag));
    }
    return probed[device] = host == 1;
}

int64_t attention_fp8_vt_bytes(int64_t B, int64_t L, int64_t H) {
    return B * H * padded_length(L) * kAttentionFp8Sm90HeadDim;
}

void launch_attention_fp8_sm90(const uint8_t* q8, const float* q_descale, const uint8_t* k8, const float* k_descale,
                               const uint8_t* vt8, const float* v_descale, bf16* o, int64_t o_row, uint8_t* o8,
                               int64_t B, int64_t L, int64_t H, cudaStream_t stream) {
    if (B == 0 || L == 0 || H == 0) return;
    check(attention_fp8_sm90_available(), "FP8 attention: this GPU or build has no sm_90a kernel");
    constexpr int64_t Dh = kAttentionFp8Sm90HeadDim;
    check(B * L < (int64_t{1} << 31) && B * H < 65536 && (L + fa8::kBM - 1) / fa8::kBM < (int64_t{1} << 31),
          "FP8 attention: [", B, ", ", L, ", ", H, "] is past the kernel's index range");
    check(reinterpret_cast<uintptr_t>(q8) % 16 == 0 && reinterpret_cast<uintptr_t>(k8) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(vt8) % 16 == 0,
          "FP8 attention: Q, K and V codes must be 16-byte aligned");
    const int64_t Lp = padded_length(L), width = H * Dh;
    const cuuint64_t qk_dims[2] = {static_cast<cuuint64_t>(width), static_cast<cuuint64_t>(B * L)};
    const cuuint64_t qk_strides[1] = {static_cast<cuuint64_t>(width)};
    const cuuint32_t q_box[2] = {static_cast<cuuint32_t>(Dh), fa8::kBM}, k_box[2] = {static_cast<cuuint32_t>(Dh), kBN};
    const CUtensorMap tm_q = byte_map(q8, 2, qk_dims, qk_strides, q_box, CU_TENSOR_MAP_SWIZZLE_128B, "Q");
    const CUtensorMap tm_k = byte_map(k8, 2, qk_dims, qk_strides, k_box, CU_TENSOR_MAP_SWIZZLE_128B, "K");
    const cuuint64_t v_dims[4] = {32, static_cast<cuuint64_t>(Dh), static_cast<cuuint64_t>(Lp / 32),
                                  static_cast<cuuint64_t>(B * H)};
    const cuuint64_t v_strides[3] = {32, 32 * Dh, static_cast<cuuint64_t>(32 * Dh * (Lp / 32))};
    const cuuint32_t v_box[4] = {32, static_cast<cuuint32_t>(Dh), kBN / 32, 1};
    const CUtensorMap tm_v = byte_map(vt8, 4, v_dims, v_strides, v_box, CU_TENSOR_MAP_SWIZZLE_32B, "V");
    const fa8::Params p{q_descale,
                        k_descale,
                        v_descale,
                        o,
                        o_row,
                        o8,
                        static_cast<int>(L),
                        static_cast<int>(H),
                        1.0f / std::sqrt(static_cast<float>(Dh))};
    const dim3 grid(static_cast<unsigned>((L + fa8::kBM - 1) / fa8::kBM), static_cast<unsigned>(H),
                    static_cast<unsigned>(B));
    allow_dynamic_shared_memory(reinterpret_cast<const void*>(fa8::attention_kernel<kBN>), fa8::kSmemBytes<kBN>);
    fa8::attention_kernel<kBN><<<grid, fa8::kThreads, fa8::kSmemBytes<kBN>, stream>>>(tm_q, tm_k, tm_v, p);
    FLUX2_CUDA_CHECK_LAUNCH("fa8::attention_kernel");
}

void launch_attention_fp8_quantize_vt(const bf16* v, int64_t v_row, uint8_t* vt8, float* partials, float* scales,
                                      int64_t B, int64_t L, int64_t H, cudaStream_t stream) {
    if (B == 0 || L == 0 || H == 0) return;
    launch_attention_fp8_amax_v(v, v_row, partials, B * L, H * kAttentionFp8Sm90HeadDim, stream);
    const int64_t Lp = padded_length(L);
    fa8::v_transpose_kernel<<<dim3(static_cast<unsigned>(Lp / kVtChunk), static_cast<unsigned>(H),
                                   static_cast<unsigned>(B)),
                              256, 0, stream>>>(v, v_row, partials, kAttentionFp8AmaxBlocks, scales, vt8,
                                                static_cast<int>(L), static_cast<int>(H), static_cast<int>(Lp));
    FLUX2_CUDA_CHECK_LAUNCH("fa8::v_transpose_kernel");
}

}  // namespace flux2::cuda
