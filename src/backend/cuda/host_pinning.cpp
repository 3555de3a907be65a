// --offload model on the GPU (Backend::pin_host_weights): every request prepares the text encoder's and the
// transformer's weights on the device again from host memory. From pageable memory the driver stages each copy
// through a buffer of its own (~12 GB/s on the H200's PCIe gen 5 link); from page-locked memory it copies directly
// (~50 GB/s). The weights are page-locked where they already are (pinned_sources.h: whole pages in place, the
// partial pages at each end copied once), and CudaBackend::upload_host copies a pinned range through those pieces.
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/pinned_sources.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2 {

class CudaHostPinning final : public HostPinning {
public:
    CudaHostPinning(CudaBackend& backend, const std::vector<const LinearWeight*>& linears)
        : backend_(backend), pinned_("--offload model", "or use --offload none or layers"), linears_(linears.size()) {
        std::vector<const uint8_t*> starts;
        for (const LinearWeight* w : linears)
            for (const auto& [data, bytes] : CudaBackend::host_sources(*w)) {
                if (bytes == 0 || backend_.pinned_uploads_.count(data)) continue;  // pinned by another already
                pinned_.add(starts.size(), data, bytes, 0);
                starts.push_back(data);
                bytes_ += bytes;
            }
        copies_ = pinned_.pin(starts.size());
        for (size_t i = 0; i < starts.size(); ++i) backend_.pinned_uploads_[starts[i]] = &copies_[i];
        starts_ = std::move(starts);
    }

    ~CudaHostPinning() override {
        // Queued copies may still read the pages: they finish before the pages are unlocked (pinned_ goes next).
        cudaStreamSynchronize(backend_.stream());
        for (const uint8_t* s : starts_) backend_.pinned_uploads_.erase(s);
    }

    std::string describe() const override {
        return str(bytes_ / 1e9, " GB of host memory holding ", linears_, " linears");
    }

private:
    CudaBackend& backend_;
    cuda::PinnedSources pinned_;
    std::vector<std::vector<cuda::PinnedSources::Copy>> copies_;  // per pinned range, as upload_host issues them
    std::vector<const uint8_t*> starts_;
    size_t linears_ = 0, bytes_ = 0;
};

std::unique_ptr<HostPinning> CudaBackend::pin_host_weights(const std::vector<const LinearWeight*>& linears) {
    check(!recording(), "cuda backend: pin_host_weights while recording");
    if (const char* env = std::getenv("FLUX2_PIN_UPLOADS"); env && std::string(env) == "0") {
        log_info("FLUX2_PIN_UPLOADS=0: weights are uploaded from pageable memory");
        return nullptr;
    }
    try {
        return std::make_unique<CudaHostPinning>(*this, linears);
    } catch (const Error& e) {
        // Slower uploads, the same results: said, not fatal.
        log_warn(e.what(), "; the weights are uploaded from pageable memory instead");
        return nullptr;
    }
}

void CudaBackend::upload_host(void* dst, const void* src, size_t bytes) {
    auto it = pinned_uploads_.find(static_cast<const uint8_t*>(src));
    if (it != pinned_uploads_.end()) {
        size_t covered = 0;
        for (const cuda::PinnedSources::Copy& c : *it->second) covered += c.bytes;
        if (covered == bytes) {
            for (const cuda::PinnedSources::Copy& c : *it->second)
                FLUX2_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + c.dst_offset, c.src, c.bytes,
                                                 cudaMemcpyHostToDevice, stream()));
            return;
        }
    }
    // From pageable memory cudaMemcpyAsync returns once the driver has staged the source.
    FLUX2_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
}

}  // namespace flux2
