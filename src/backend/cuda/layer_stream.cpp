// --offload layers on the GPU (Backend::stream_layers): the streamed groups' weights are copied from page-locked
// host memory (pinned_sources.h) into one of two device buffers on a copy stream, while the groups before compute
// on the backend's stream. The groups that fit the resident budget stay resident and are skipped. Events order the
// two streams (k counts the streamed groups, buffer k % 2 is the k-th one's):
//   loaded[b]  recorded on the copy stream after a group's copies into buffer b; the compute stream waits on it
//              at that group's enter();
//   free[b]    recorded on the compute stream at the group's leave(); the copy of streamed group k + 2 into the
//              same buffer waits on it, and is enqueued right then, so it overlaps everything up to its use.
// A streamed group always uses the same buffer at the same offsets, so the prepared weights are fixed views into the
// buffers and a recorded step (a CUDA graph) replays the copies with the kernels. With an even number of streamed
// groups the second-to-last one's leave() also copies the first one for the next run (buffer 0 is free by then),
// hiding that copy too; the run ends by joining it.
// With LayerStreamOptions::e4m3_groups, some streamed groups' NVFP4 weights travel as the E4M3 codes the GEMM reads
// (made once at load into page-locked memory of the stream's own) instead of being converted before each GEMM.
// The buffers are parkable memory (parkable_memory.h): release_buffers() unmaps them between runs of the component,
// and the next run maps them again at the same addresses.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/pinned_sources.h"
#include "backend/layer_stream_plan.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2 {

namespace {
constexpr size_t kAlign = 256;  // the offset of every streamed tensor in its buffer (GEMM operands want 16 bytes)
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
}  // namespace

std::vector<CudaBackend::StreamSource> CudaBackend::host_sources(const LinearWeight& w) {
    switch (w.format) {
        case WeightFormat::dense:
            return {{w.dense.bytes.data(), w.dense.bytes.size()}};
        case WeightFormat::nvfp4:
            return {{w.nvfp4.codes.data(), w.nvfp4.codes.size()}, {w.nvfp4.scales.data(), w.nvfp4.scales.size()}};
        case WeightFormat::fp8:
            return {{w.fp8.codes.data(), w.fp8.codes.size()}};
    }
    return {};
}

std::vector<CudaBackend::StreamSource> CudaBackend::stream_sources(const LinearWeight& w, std::string& why) const {
    const bool fp8_path = precision_ == CudaLinearPrecision::fp8 && w.in_features % 16 == 0;
    switch (w.format) {
        case WeightFormat::dense:
            if (w.dense.dtype == DType::BF16) return host_sources(w);
            why = "16/32-bit float weights are converted to BF16 at preparation";
            return {};
        case WeightFormat::nvfp4:
            // The fp8 path runs NVFP4 layers from their 4-bit form, converted before each GEMM (as fp4 residency).
            if (fp8_path) return host_sources(w);
            why = precision_ == CudaLinearPrecision::fp4
                      ? "the native FP4 GEMM's weight layout is made at preparation"
                      : "NVFP4 weights on the bf16 path are converted to BF16 at preparation";
            return {};
        case WeightFormat::fp8:
            if (fp8_path) return host_sources(w);
            why = "FP8 weights off the fp8 path are converted to BF16 at preparation";
            return {};
    }
    return {};
}

std::vector<Tensor> CudaBackend::streamed_views(const LinearWeight& w, const std::vector<Shape>& shapes,
                                                DType dtype) const {
    const StreamedPlace& place = streamed_.at(&w);
    std::vector<Tensor> views;
    size_t offset = place.offset;
    for (const Shape& s : shapes) {
        views.push_back(place.buffer.view(s, dtype, offset));
        offset += aligned(static_cast<size_t>(shape_numel(s)) * dtype_size(dtype));
    }
    return views;
}

class CudaLayerStream final : public LayerStream {
public:
    CudaLayerStream(CudaBackend& backend, const std::vector<std::vector<const LinearWeight*>>& groups,
                    const LayerStreamOptions& options)
        : backend_(backend),
          groups_(groups.size()),
          index_(groups.size(), kResident),
          pinned_("--offload layers", "or use --offload model") {
        // What each group would stream, and hold if it stayed resident.
        struct Plan {
            std::vector<std::pair<const LinearWeight*, std::vector<CudaBackend::StreamSource>>> linears;
            size_t stream_bytes = 0;
            int64_t resident_bytes = 0;
        };
        std::vector<Plan> plans(groups.size());
        std::map<std::string, int> unstreamable;  // why -> how many linears
        for (size_t g = 0; g < groups.size(); ++g) {
            for (const LinearWeight* w : groups[g]) {
                std::string why;
                auto sources = backend_.stream_sources(*w, why);
                if (sources.empty()) {
                    ++unstreamable[why];
                    continue;
                }
                for (const auto& src : sources) plans[g].stream_bytes += src.bytes;
                plans[g].resident_bytes += backend_.resident_bytes(*w);
                plans[g].linears.emplace_back(w, std::move(sources));
            }
        }
        // Within the budget, the groups that stream the most bytes stay resident (the fewest bytes on the bus),
        // spread among the streamed ones of their kind.
        std::vector<int64_t> stream_bytes, resident_bytes;
        for (const Plan& p : plans) {
            stream_bytes.push_back(static_cast<int64_t>(p.stream_bytes));
            resident_bytes.push_back(p.resident_bytes);
        }
        const std::vector<bool> resident =
            spread_resident_groups(choose_resident_groups(stream_bytes, resident_bytes, options.resident_budget_bytes),
                                   stream_bytes, resident_bytes);
        for (size_t g = 0; g < plans.size(); ++g) {
            if (!resident[g]) continue;
            resident_bytes_ += plans[g].resident_bytes;
            ++resident_groups_;
        }
        // The streamed groups in order; the k-th uses buffer k % 2.
        for (size_t g = 0; g < groups.size(); ++g) {
            if (resident[g] || plans[g].linears.empty()) continue;
            index_[g] = streamed_groups_.size();
            streamed_groups_.push_back(g);
        }
        const std::vector<bool> as_e4m3 = pick_e4m3_groups(plans, options.e4m3_groups);
        std::vector<size_t> buffer_bytes(2, 0);
        std::vector<std::pair<size_t, cuda::PinnedSources::Copy>> e4m3_copies;  // (streamed group, copy)
        for (size_t k = 0; k < streamed_groups_.size(); ++k) {
            const size_t g = streamed_groups_[k];
            e4m3_groups_ += as_e4m3[g];
            size_t offset = 0;
            for (auto& [w, sources] : plans[g].linears) {
                if (as_e4m3[g] && w->format == WeightFormat::nvfp4) {
                    const size_t bytes = static_cast<size_t>(w->out_features * w->in_features);
                    uint8_t* host = e4m3_host_.take(bytes);
                    streamed_.push_back({w, k % 2, offset, host});
                    e4m3_copies.push_back({k, {host, offset, bytes}});
                    offset += aligned(bytes);
                    streamed_bytes_ += bytes;
                    continue;
                }
                streamed_.push_back({w, k % 2, offset, nullptr});
                for (const auto& [data, bytes] : sources) {
                    pinned_.add(k, data, bytes, offset);
                    offset += aligned(bytes);
                    streamed_bytes_ += bytes;
                }
            }
            buffer_bytes[k % 2] = std::max(buffer_bytes[k % 2], offset);
        }
        buffer_bytes_ = std::max(buffer_bytes[0], buffer_bytes[1]);
        log_info("offload layers: page-locking ", streamed_bytes_ / 1e9, " GB of host memory for ",
                 streamed_groups_.size(), " streamed groups");
        copies_ = pinned_.pin(streamed_groups_.size());
        for (const auto& [k, copy] : e4m3_copies) copies_[k].push_back(copy);
        for (int b = 0; b < 2; ++b) {
            if (buffer_bytes[b] == 0) continue;
            parkable_[b] = std::make_shared<cuda::ParkableMemory>(buffer_bytes[b], backend_.stream_->device(),
                                                                  backend_.parkable_bytes_, "streamed weights");
            buffers_[b] = Tensor::wrap({static_cast<int64_t>(buffer_bytes[b])}, DType::U8, Device::cuda,
                                       parkable_[b]->data(), parkable_[b]);
        }
        wrap_ = streamed_groups_.size() >= 2 && streamed_groups_.size() % 2 == 0;

        FLUX2_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
        for (cudaEvent_t* e : {&fork_, &loaded_[0], &loaded_[1], &free_[0], &free_[1]})
            FLUX2_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));

        // Prepared anew as views into the buffers (the per-channel scales are made now, once, and stay).
        for (const Streamed& s : streamed_) {
            release_prepared(*s.w);
            backend_.streamed_[s.w] = {buffers_[s.buffer], s.offset, s.e4m3_host};
        }
        try {
            for (const Streamed& s : streamed_) backend_.prepare(*s.w);
        } catch (...) {
            // No destructor runs for a constructor that throws.
            forget_streamed();
            release_stream();
            throw;
        }
        for (const auto& [why, n] : unstreamable)
            unstreamable_ += str(unstreamable_.empty() ? "" : "; ", n, " (", why, ")");
    }

    ~CudaLayerStream() override {
        // The buffers may still be read or written by queued work: finish it before the copies' sources go.
        cudaStreamSynchronize(backend_.stream());
        cudaStreamSynchronize(copy_);
        forget_streamed();
        release_stream();
    }

    void enter(size_t group) override {
        check(group < groups_, "LayerStream::enter(", group, ") of ", groups_, " groups");
        const cudaStream_t compute = backend_.stream();
        const size_t n = streamed_groups_.size();
        if (group == 0 && n > 0) {
            map_buffers();
            // The copy stream starts after everything queued so far (and joins a recording here): the first two
            // streamed groups, unless the previous run copied the first one ahead already.
            FLUX2_CUDA_CHECK(cudaEventRecord(fork_, compute));
            FLUX2_CUDA_CHECK(cudaStreamWaitEvent(copy_, fork_));
            first_joined_ = primed_;
            primed_ = false;
            if (!first_joined_) enqueue_copies(0);
            if (n >= 2) enqueue_copies(1);
        }
        const size_t k = index_[group];
        if (k == kResident) return;
        // A primed first group was joined by the previous run's last leave().
        if (!(k == 0 && first_joined_)) FLUX2_CUDA_CHECK(cudaStreamWaitEvent(compute, loaded_[k % 2]));
    }

    void leave(size_t group) override {
        check(group < groups_, "LayerStream::leave(", group, ") of ", groups_, " groups");
        const cudaStream_t compute = backend_.stream();
        const size_t k = index_[group], n = streamed_groups_.size();
        if (k != kResident) {
            // Its buffer is free once these ops ran: the streamed group after next goes there, as early as that.
            FLUX2_CUDA_CHECK(cudaEventRecord(free_[k % 2], compute));
            if (k + 2 < n || (wrap_ && k + 2 == n)) {
                FLUX2_CUDA_CHECK(cudaStreamWaitEvent(copy_, free_[k % 2]));
                enqueue_copies((k + 2) % n);
                if (k + 2 == n) wrap_pending_ = true;
            }
        }
        if (group + 1 == groups_ && wrap_pending_) {
            // Join the copy of the first streamed group for the next run, so that the run (or its recording) ends
            // with it.
            FLUX2_CUDA_CHECK(cudaStreamWaitEvent(compute, loaded_[0]));
            wrap_pending_ = false;
            primed_ = true;
        }
    }

    void before_replay() override {
        map_buffers();
        // Every recorded run starts from a primed buffer 0 and ends by priming it again.
        if (!wrap_ || primed_) return;
        const cudaStream_t compute = backend_.stream();
        FLUX2_CUDA_CHECK(cudaEventRecord(fork_, compute));
        FLUX2_CUDA_CHECK(cudaStreamWaitEvent(copy_, fork_));
        enqueue_copies(0);
        FLUX2_CUDA_CHECK(cudaStreamWaitEvent(compute, loaded_[0]));
        primed_ = true;
    }

    void release_buffers() override {
        check(!backend_.recording(), "LayerStream::release_buffers while recording");
        // Queued copies and ops may still use them.
        FLUX2_CUDA_CHECK(cudaStreamSynchronize(backend_.stream()));
        FLUX2_CUDA_CHECK(cudaStreamSynchronize(copy_));
        for (const auto& p : parkable_)
            if (p) p->park();
        primed_ = wrap_pending_ = false;  // buffer 0's copy ahead is gone with it
    }

    std::string describe() const override {
        std::string s =
            str(streamed_.size(), " linears in ", streamed_groups_.size(), " of ", groups_, " groups stream ",
                streamed_bytes_ / 1e9, " GB per pass from ", (pinned_.pinned_bytes() + e4m3_host_.bytes()) / 1e9,
                " GB of page-locked host memory through ", buffer_bytes_ / 1e9, " GB device buffers (2)");
        if (e4m3_groups_ > 0)
            s += str("; ", e4m3_groups_, " of the streamed groups carry their NVFP4 weights as E4M3 (",
                     e4m3_host_.bytes() / 1e9, " GB of it, converted at load)");
        if (resident_groups_ > 0)
            s +=
                str("; ", resident_groups_, " groups (", resident_bytes_ / 1e9, " GB) stay resident within the budget");
        if (!unstreamable_.empty()) s += str("; resident linears: ", unstreamable_);
        return s;
    }

private:
    static constexpr size_t kResident = static_cast<size_t>(-1);
    struct Streamed {
        const LinearWeight* w;
        size_t buffer, offset;
        uint8_t* e4m3_host;  // streamed as E4M3 codes from here (null: from its own host bytes)
    };

    // Page-locked host memory for the E4M3 codes of the streamed groups that carry them, handed out in order.
    class E4m3Host {
    public:
        ~E4m3Host() {
            if (base_) cudaFreeHost(base_);
        }
        // Allocates room for `bytes` in all, 256-aligned pieces; throws when it cannot be page-locked.
        void reserve(size_t bytes) {
            if (bytes == 0) return;
            const cudaError_t e = cudaHostAlloc(&base_, bytes, cudaHostAllocDefault);
            check(e == cudaSuccess, "--stream-e4m3: cannot allocate ", bytes / 1e9,
                  " GB of page-locked host memory for the E4M3 copies (", cudaGetErrorString(e),
                  "); stream fewer groups as E4M3");
            capacity_ = bytes;
        }
        uint8_t* take(size_t bytes) {
            check(used_ + bytes <= capacity_, "--stream-e4m3: E4M3 host copies overflow (internal)");
            uint8_t* p = static_cast<uint8_t*>(base_) + used_;
            used_ += aligned(bytes);
            return p;
        }
        size_t bytes() const { return used_; }

    private:
        void* base_ = nullptr;
        size_t capacity_ = 0, used_ = 0;
    };

    // Per group, whether its NVFP4 weights stream as E4M3: `count` of the streamed groups (streamed_groups_)
    // holding such weights, spread evenly among them; reserves their host memory. Only the even streamed groups
    // (k = 0, 2, ...) are candidates: they all use buffer 0, so only that one grows to hold E4M3 codes (dev: by
    // 0.21 GB, not twice that).
    template <typename Plans>
    std::vector<bool> pick_e4m3_groups(const Plans& plans, int count) {
        std::vector<size_t> candidates;
        std::vector<size_t> bytes;
        for (size_t k = 0; k < streamed_groups_.size(); k += 2) {
            const size_t g = streamed_groups_[k];
            size_t b = 0;
            for (const auto& [w, sources] : plans[g].linears)
                if (w->format == WeightFormat::nvfp4)
                    b += aligned(static_cast<size_t>(w->out_features * w->in_features));
            if (b == 0) continue;
            candidates.push_back(g);
            bytes.push_back(b);
        }
        std::vector<bool> as_e4m3(plans.size(), false);
        const std::vector<bool> pick = pick_evenly(candidates.size(), static_cast<size_t>(std::max(0, count)));
        size_t total = 0;
        for (size_t i = 0; i < candidates.size(); ++i) {
            if (!pick[i]) continue;
            as_e4m3[candidates[i]] = true;
            total += bytes[i];
        }
        e4m3_host_.reserve(total);
        return as_e4m3;
    }

    // The streamed linears go back to being prepared resident at their next use.
    void forget_streamed() {
        for (const Streamed& s : streamed_) {
            backend_.streamed_.erase(s.w);
            release_prepared(*s.w);
        }
    }

    void release_stream() {
        for (cudaEvent_t e : {fork_, loaded_[0], loaded_[1], free_[0], free_[1]}) cudaEventDestroy(e);
        cudaStreamDestroy(copy_);
    }

    // Maps the buffers again where release_buffers() gave them back. Between runs: a recording replays into
    // them as they were when it was made, so it cannot be the first user after a release.
    void map_buffers() {
        for (const auto& p : parkable_) {
            if (!p || !p->parked()) continue;
            check(!backend_.recording(), "LayerStream: a recording began with the streamed buffers released");
            p->unpark();
        }
    }

    // The k-th streamed group's copies into its buffer, then loaded[k % 2] on the copy stream.
    void enqueue_copies(size_t k) {
        auto* dst = static_cast<uint8_t*>(buffers_[k % 2].raw());
        for (const cuda::PinnedSources::Copy& c : copies_[k])
            FLUX2_CUDA_CHECK(cudaMemcpyAsync(dst + c.dst_offset, c.src, c.bytes, cudaMemcpyHostToDevice, copy_));
        FLUX2_CUDA_CHECK(cudaEventRecord(loaded_[k % 2], copy_));
    }

    CudaBackend& backend_;
    size_t groups_ = 0;
    std::vector<size_t> index_;            // per group: its index among the streamed groups, or kResident
    std::vector<size_t> streamed_groups_;  // the streamed groups in order
    std::vector<Streamed> streamed_;
    cuda::PinnedSources pinned_;
    std::vector<std::vector<cuda::PinnedSources::Copy>> copies_;  // per streamed group
    std::shared_ptr<cuda::ParkableMemory> parkable_[2];
    Tensor buffers_[2];  // views of parkable_
    E4m3Host e4m3_host_;
    size_t buffer_bytes_ = 0, streamed_bytes_ = 0, resident_groups_ = 0, e4m3_groups_ = 0;
    int64_t resident_bytes_ = 0;
    std::string unstreamable_;
    bool wrap_ = false;          // the second-to-last streamed group's buffer takes the first one for the next run
    bool wrap_pending_ = false;  // that copy was enqueued in this run and is joined at the last leave()
    bool primed_ = false;        // buffer 0 holds the first streamed group from the previous run's wrap copy
    bool first_joined_ = false;  // this run started primed
    cudaStream_t copy_ = nullptr;
    cudaEvent_t fork_ = nullptr, loaded_[2] = {nullptr, nullptr}, free_[2] = {nullptr, nullptr};
};

std::unique_ptr<LayerStream> CudaBackend::stream_layers(const std::vector<std::vector<const LinearWeight*>>& groups,
                                                        const LayerStreamOptions& options) {
    check(!recording(), "cuda backend: stream_layers while recording");
    check(options.e4m3_groups == 0 || precision_ == CudaLinearPrecision::fp8,
          "--stream-e4m3 is for the fp8 linear path (NVFP4 weights converted to E4M3), not --precision ",
          precision_name(precision_));
    return std::make_unique<CudaLayerStream>(*this, groups, options);
}

int64_t CudaBackend::resident_bytes(const LinearWeight& w) const {
    const int64_t n = w.out_features * w.in_features;
    if (w.format == WeightFormat::dense) return 2 * n;  // BF16 on every path
    // The fp8 path's E4M3 codes (4-bit ones with --residency fp4) and a scale per channel; BF16 otherwise.
    if (precision_ != CudaLinearPrecision::fp8) return 2 * n;
    const bool four_bit = w.format == WeightFormat::nvfp4 && fp4_resident_;
    return (four_bit ? n / 2 + n / 16 : n) + 4 * w.out_features;
}

}  // namespace flux2
