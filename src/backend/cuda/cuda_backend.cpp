// CudaBackend: construction, device selection, memory ops.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/attention_cudnn.h"
#include "backend/cuda/attention_fp8.h"
#include "backend/cuda/attention_fp8_sm90.h"
#include "backend/cuda/causal_attention_cudnn.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/gemm_fp4_cublaslt.h"
#include "backend/cuda/launchers.h"
#include "backend/cuda/nvml_monitor.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2 {

namespace {
int parse_device_index(const std::string& device) {
    if (device == "cuda") return 0;
    check(device.rfind("cuda:", 0) == 0 && device.size() > 5, "unknown CUDA device '", device,
          "' (expected cuda or cuda:N)");
    const std::string index = device.substr(5);
    for (char c : index) check(c >= '0' && c <= '9', "bad CUDA device index in '", device, "'");
    return std::stoi(index);
}

CudaLinearPrecision choose_precision(const std::string& requested, const cudaDeviceProp& prop) {
    const int cc = prop.major * 10 + prop.minor;
    // cuBLASLt's per-row (OUTER_VEC_32F) FP8 scales need Hopper or newer.
    const bool fp8_ok = cc >= 90;
    if (requested.empty()) return fp8_ok ? CudaLinearPrecision::fp8 : CudaLinearPrecision::bf16;
    if (requested == "bf16") return CudaLinearPrecision::bf16;
    if (requested == "fp8") {
        check(fp8_ok, "precision fp8 needs a GPU of compute capability 9.0 or newer (Hopper); ", prop.name, " is ",
              prop.major, ".", prop.minor, "; use --precision bf16");
        return CudaLinearPrecision::fp8;
    }
    if (requested == "fp4") {
        // Block-scaled FP4 tensor-core GEMMs exist on Blackwell only (sm_100 datacenter, sm_120 consumer).
        check(prop.major == 10 || prop.major == 12, "precision fp4 (native NVFP4 GEMM) needs a Blackwell GPU (compute ",
              "capability 10.x or 12.x); ", prop.name, " is ", prop.major, ".", prop.minor,
              "; use --precision fp8 or bf16");
        return CudaLinearPrecision::fp4;
    }
    fail("unknown precision '", requested, "' for the CUDA backend (expected fp8, bf16, fp4 or empty)");
}
}  // namespace

const char* precision_name(CudaLinearPrecision p) {
    switch (p) {
        case CudaLinearPrecision::fp8:
            return "fp8";
        case CudaLinearPrecision::fp4:
            return "fp4";
        case CudaLinearPrecision::bf16:
            break;
    }
    return "bf16";
}

bool cuda_device_available() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

CudaDeviceProbe probe_cuda_device(int index) {
    CudaDeviceProbe probe;
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count <= index) {
        probe.why_not = status == cudaSuccess ? str(count, " CUDA GPU(s) visible, GPU ", index, " asked for")
                                              : str("no CUDA GPU visible: ", cudaGetErrorString(status));
        return probe;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, index) != cudaSuccess || cudaSetDevice(index) != cudaSuccess) {
        probe.why_not = str("GPU ", index, " cannot be queried");
        return probe;
    }
    probe.description =
        str(prop.name, ", compute ", prop.major, ".", prop.minor, ", ", prop.totalGlobalMem >> 20, " MiB");
    // The kernels are compiled for a list of architectures (CMAKE_CUDA_ARCHITECTURES); another GPU cannot run them.
    if (const cudaError_t image = cuda::kernel_image_status(); image != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error the query may leave
        probe.why_not = str(probe.description, ": this build has no kernels for it (", cudaGetErrorString(image),
                            "); rebuild with CMAKE_CUDA_ARCHITECTURES including ", prop.major, prop.minor);
        return probe;
    }
    probe.usable = true;
    probe.default_precision = precision_name(choose_precision("", prop));
    return probe;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
    return std::make_unique<CudaBackend>(options);
}

void expect_device_bf16(const Tensor& t, const char* op, const char* what) {
    check(t.defined(), op, ": ", what, " is an empty tensor");
    check(t.device() == Device::cuda && t.dtype() == DType::BF16, op, ": ", what,
          " must be a BF16 tensor on the GPU (made by the cuda backend), got ", dtype_name(t.dtype()),
          t.device() == Device::cpu ? " on the host" : " on the GPU");
}

CudaBackend::CudaBackend(const BackendOptions& options) : options_(options) {
    const int device = parse_device_index(options.device);
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    check(status == cudaSuccess && count > 0, "device '", options.device, "' requested, but no CUDA GPU is visible (",
          status == cudaSuccess ? "0 devices" : cudaGetErrorString(status), ")");
    check(device < count, "device '", options.device, "' requested, but only ", count, " CUDA GPU(s) are visible");
    check(options.nvfp4_activations == Nvfp4Activations::w4a16,
          "NVFP4 activation quantization (w4a4) is the CPU emulation of Blackwell FP4 numerics; the CUDA backend "
          "runs NVFP4 layers in fp8, bf16 or (Blackwell) fp4 (choose with the precision option)");

    cudaDeviceProp prop{};
    FLUX2_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    device_name_ = prop.name;
    memory_capacity_ = static_cast<int64_t>(prop.totalGlobalMem);
    sm_count_ = prop.multiProcessorCount;
    precision_ = choose_precision(options.precision, prop);
    check(options.residency.empty() || options.residency == "fp8" || options.residency == "fp4", "unknown residency '",
          options.residency, "' (expected fp8 or fp4)");
    fp4_resident_ = options.residency == "fp4";
    check(!fp4_resident_ || precision_ == CudaLinearPrecision::fp8,
          "residency fp4 converts NVFP4 weights to E4M3 per layer: it needs the fp8 precision path");
    stream_ = std::make_shared<cuda::Stream>(device);
    // The pools are per device: start this backend's peak (peak_memory_bytes) from what is in use now, not from
    // the high-water mark of an earlier backend in the same process.
    reset_peak_memory();
    const std::string& accumulation = options.fp8_accumulation;
    check(accumulation.empty() || accumulation == "fast" || accumulation == "precise", "unknown fp8 accumulation '",
          accumulation, "' (expected fast or precise)");
    fast_fp8_accumulation_ = accumulation != "precise";
    gemm_ = std::make_unique<cuda::CublasLtGemm>(stream_, fast_fp8_accumulation_);
    sdpa_ = std::make_unique<cuda::CudnnSdpa>(stream_);
    const std::string& attention = options.attention;
    const bool auto_attention = attention.empty() || attention == "auto";
    const bool own_fp8 = attention == "fp8-flux2";
    check(auto_attention || attention == "bf16" || attention == "fp8" || own_fp8, "unknown attention '", attention,
          "' (expected auto, bf16, fp8 or fp8-flux2)");
    const bool has_fp8_sdpa = prop.major >= 9;  // cuDNN's FP8 SDPA needs Hopper or newer
    check(attention != "fp8" || has_fp8_sdpa, "attention fp8 runs on cuDNN's FP8 SDPA, which needs a Hopper ",
          "(compute 9.0) or newer GPU; ", device_name_, " is compute ", prop.major, ".", prop.minor);
    check(!own_fp8 || cuda::attention_fp8_sm90_available(), "attention fp8-flux2 runs flux2's own FP8 attention ",
          "kernel, which needs an sm_90 GPU (H100/H200) and a build for sm_90a; ", device_name_, " is compute ",
          prop.major, ".", prop.minor);
    fp8_attention_ =
        attention == "fp8" || own_fp8 || (auto_attention && has_fp8_sdpa && precision_ != CudaLinearPrecision::bf16);
    if (fp8_attention_) sdpa_fp8_ = std::make_unique<cuda::Fp8Attention>(stream_, own_fp8);
    // FLUX2_ATTENTION_E4M3_OUT=0: the single block's FP8 attention output goes through BF16 as before (comparisons).
    const char* e4m3_out = std::getenv("FLUX2_ATTENTION_E4M3_OUT");
    attention_e4m3_out_ = !(e4m3_out && std::string(e4m3_out) == "0");
    conv_ = std::make_unique<cuda::CudnnConv>(stream_);
    log_info("cuda backend: ", device_name_, " (compute ", prop.major, ".", prop.minor, ", ", prop.totalGlobalMem >> 20,
             " MiB), NVFP4/FP8 linears in ", precision_name(precision_),
             fp4_resident_ ? " (NVFP4 weights resident in 4 bits)" : "", ", attention in ",
             fp8_attention_ ? "FP8" : "BF16");
}

CudaBackend::~CudaBackend() = default;

void CudaBackend::synchronize() { FLUX2_CUDA_CHECK(cudaStreamSynchronize(stream_->get())); }

Tensor CudaBackend::empty(const Shape& shape, DType dtype) {
    Tensor t = cuda::empty_tensor(shape, dtype, stream_);
    if (poison_ && t.nbytes()) FLUX2_CUDA_CHECK(cudaMemsetAsync(t.raw(), 0xFF, t.nbytes(), stream_->get()));
    return t;
}

Tensor CudaBackend::upload(const Tensor& host_f32) {
    check(host_f32.device() == Device::cpu && host_f32.dtype() == DType::F32,
          "cuda backend: upload expects a host F32 tensor, got ", dtype_name(host_f32.dtype()));
    Tensor out = empty(host_f32.shape(), DType::BF16);
    upload_into(host_f32, out);
    return out;
}

void CudaBackend::upload_into(const Tensor& host_f32, Tensor& dst) {
    FLUX2_PROFILE_OP("upload");
    check(host_f32.device() == Device::cpu && host_f32.dtype() == DType::F32,
          "cuda backend: upload_into expects a host F32 tensor, got ", dtype_name(host_f32.dtype()));
    expect_device_bf16(dst, "upload_into", "dst");
    check(host_f32.shape() == dst.shape(), "cuda backend: upload_into of ", shape_str(host_f32.shape()), " into ",
          shape_str(dst.shape()));
    if (host_f32.numel() == 0) return;
    Tensor staging = empty(host_f32.shape(), DType::F32);
    // From pageable memory cudaMemcpyAsync returns once the source is staged, so the host tensor may go away.
    FLUX2_CUDA_CHECK(
        cudaMemcpyAsync(staging.raw(), host_f32.raw(), host_f32.nbytes(), cudaMemcpyHostToDevice, stream()));
    cuda::launch_f32_to_bf16(static_cast<const float*>(staging.raw()), static_cast<cuda::bf16*>(dst.raw()), dst.numel(),
                             stream());
}

Tensor CudaBackend::download(const Tensor& t) {
    FLUX2_PROFILE_OP("download");
    check(t.device() == Device::cuda && (t.dtype() == DType::BF16 || t.dtype() == DType::F32),
          "cuda backend: download expects a BF16 or F32 device tensor, got ", dtype_name(t.dtype()),
          t.device() == Device::cpu ? " on the host" : "");
    Tensor host = Tensor::zeros(t.shape(), DType::F32);
    if (t.numel() == 0) return host;
    Tensor f32 = t;
    if (t.dtype() == DType::BF16) {
        f32 = empty(t.shape(), DType::F32);
        cuda::launch_bf16_to_f32(static_cast<const cuda::bf16*>(t.raw()), static_cast<float*>(f32.raw()), t.numel(),
                                 stream_->get());
    }
    FLUX2_CUDA_CHECK(cudaMemcpyAsync(host.raw(), f32.raw(), host.nbytes(), cudaMemcpyDeviceToHost, stream_->get()));
    synchronize();
    return host;
}

cudaMemPool_t CudaBackend::default_pool() const {
    cudaMemPool_t pool = nullptr;
    FLUX2_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, stream_->device()));
    return pool;
}

std::unique_ptr<ActivityMonitor> CudaBackend::monitor_activity(std::string& why_not) {
    return cuda::start_nvml_monitor(stream_->device(), why_not);
}

int64_t CudaBackend::peak_memory_bytes() const {
    // Device memory comes from the default pool, which eager tensors and the weights come from (device_memory.cpp),
    // and from mapped ranges outside it: the graph arena, which keeps a recorded step's intermediates between replays
    // until release_cached_memory, and the layer streams' buffers, mapped or not for whole phases of a request. The
    // high-water marks add up to the peak because one stays flat while another moves (the weights during replays,
    // the arena during eager ops such as the encoder and the decode), except across a recording or a release of
    // cached memory, where what came before is accounted apart (peak_folded_).
    uint64_t high = 0;
    FLUX2_CUDA_CHECK(cudaMemPoolGetAttribute(default_pool(), cudaMemPoolAttrUsedMemHigh, &high));
    return std::max(peak_folded_, static_cast<int64_t>(high) + graph_arena_bytes_->high() + parkable_bytes_->high());
}

void CudaBackend::fold_peak() {
    peak_folded_ = std::max(peak_folded_, peak_memory_bytes());
    reset_pool_highs();
}

void CudaBackend::reset_pool_highs() {
    // A high-water mark can only be set to zero, which restarts it from the memory held now.
    uint64_t zero = 0;
    FLUX2_CUDA_CHECK(cudaMemPoolSetAttribute(default_pool(), cudaMemPoolAttrUsedMemHigh, &zero));
    graph_arena_bytes_->reset_high();
    parkable_bytes_->reset_high();
}

void CudaBackend::reset_peak_memory() {
    reset_pool_highs();
    peak_folded_ = 0;
}

void CudaBackend::release_cached_memory() {
    check(!recording(), "cuda backend: release_cached_memory while recording");
    conv_->release_workspace();  // freed in stream order, so before the synchronization that the trims need
    synchronize();
    // The recorded steps' arena maps its memory again at the next replay.
    if (graph_arena_) graph_arena_->park();
    FLUX2_CUDA_CHECK(cudaMemPoolTrimTo(default_pool(), 0));
    // What was just given back raised a mark that another one's later mark must not be added to: the conditioning
    // linears (--offload layers) are uploaded, used and released before the steps map their arena, and the two marks
    // summed counted dev's 1.44 GB of them as if held during the steps.
    fold_peak();
}

int64_t CudaBackend::memory_in_use_bytes() const {
    // Eager tensors (weights among them) live in the default pool, the layer streams' mapped buffers apart; a
    // recorded step's intermediates in the graph arena are not counted.
    uint64_t used = 0;
    FLUX2_CUDA_CHECK(cudaMemPoolGetAttribute(default_pool(), cudaMemPoolAttrUsedMemCurrent, &used));
    return static_cast<int64_t>(used) + parkable_bytes_->current();
}

int64_t CudaBackend::device_memory_used_bytes() const {
    size_t free = 0, total = 0;
    FLUX2_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return static_cast<int64_t>(total - free);
}

int64_t CudaBackend::memory_available_bytes() const {
    size_t free = 0, total = 0;
    FLUX2_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    // The default pool keeps freed blocks reserved (not free to the driver) but reusable by this backend.
    uint64_t reserved = 0;
    FLUX2_CUDA_CHECK(cudaMemPoolGetAttribute(default_pool(), cudaMemPoolAttrReservedMemCurrent, &reserved));
    return static_cast<int64_t>(free) + static_cast<int64_t>(reserved) + parkable_bytes_->current();
}

Tensor CudaBackend::zeros(const Shape& shape) {
    Tensor t = empty(shape, DType::BF16);
    if (t.numel()) FLUX2_CUDA_CHECK(cudaMemsetAsync(t.raw(), 0, t.nbytes(), stream_->get()));
    return t;
}

}  // namespace flux2
