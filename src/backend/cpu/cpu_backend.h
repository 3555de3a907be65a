#pragma once
// The fp32 host backend: the numerical reference for every other path. GEMMs go through OpenBLAS; the
// row-wise ops split their rows across the machine's cores with parallel_for.
#include <memory>

#include "backend/backend.h"

namespace flux2 {

class CpuBackend : public Backend {
public:
    explicit CpuBackend(const BackendOptions& options) : options_(options) {}
    std::string name() const override { return "cpu"; }

    Tensor upload(const Tensor& host_f32) override;
    Tensor download(const Tensor& t) override;
    void upload_into(const Tensor& host_f32, Tensor& dst) override;
    Tensor upload_state(const Tensor& host_f32) override;
    void state_into(const Tensor& state, Tensor& dst) override;
    Tensor zeros(const Shape& shape) override;
    Tensor uninitialized(const Shape& shape) override;
    int64_t peak_memory_bytes() const override;  // VmHWM of /proc/self/status
    void reset_peak_memory() override;           // writes 5 to /proc/self/clear_refs (resets VmHWM)
    int64_t memory_in_use_bytes() const override;
    int64_t memory_capacity_bytes() const override;

    Tensor linear(const Tensor& x, const LinearWeight& w) override;
    Tensor linear_rows(const Tensor& x, const LinearWeight& w, int64_t begin, int64_t count) override;

    Tensor silu(const Tensor& x) override;
    Tensor swiglu(const Tensor& x) override;
    Tensor add(const Tensor& a, const Tensor& b) override;
    Tensor mul(const Tensor& a, const Tensor& b) override;
    void euler_update(Tensor& x, const Tensor& v, const Tensor* v_neg, float guidance, float dt) override;

    Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) override;
    void gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) override;
    Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) override;

    Tensor rms_norm_rope(const Tensor& x, const Tensor& norm_weight, const Tensor& cos, const Tensor& sin,
                         float eps) override;
    Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v) override;

    void rms_norm_rope_into(const Tensor& x, int64_t col, const Tensor& norm_weight, const Tensor& cos,
                            const Tensor& sin, float eps, Tensor& out, int64_t tok) override;
    void swiglu_into(const Tensor& x, int64_t col, int64_t m, Tensor& out, int64_t out_col) override;
    void attention_into(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out,
                        int64_t out_col) override;
    void copy_into(const Tensor& x, int64_t col, int64_t count, Tensor& out, int64_t tok, int64_t out_col) override;

    Tensor concat(const Tensor& a, const Tensor& b, int axis) override;
    Tensor slice(const Tensor& x, int axis, int64_t begin, int64_t count) override;

    // ---- text encoder ops ----
    Tensor rope_half(const Tensor& x, const Tensor& cos, const Tensor& sin) override;
    Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask) override;

    // ---- image ops (VAE) ----
    Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding) override;
    Tensor pad2d(const Tensor& x, int left, int right, int top, int bottom) override;
    Tensor group_norm(const Tensor& x, int num_groups, const Tensor& weight, const Tensor& bias, float eps,
                      bool silu) override;
    Tensor upsample_nearest2x(const Tensor& x) override;
    Tensor add_bias(const Tensor& x, const Tensor& bias) override;
    Tensor transpose_last2(const Tensor& x) override;

private:
    BackendOptions options_;
};

// C = A B^T (C += A B^T when accumulate) for row-major A [m, k], B [n, k], C [m, n] (single entry point so every
// op shares one GEMM).
void cpu_gemm_nt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool accumulate = false);

}  // namespace flux2
