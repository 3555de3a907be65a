// CpuBackend: elementwise activations and arithmetic.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {

namespace {
constexpr int64_t kGrain = 1 << 14;
inline float silu_f(float v) { return v / (1.0f + std::exp(-v)); }

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
    check(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ");
}
}  // namespace

Tensor CpuBackend::silu(const Tensor& x) {
    Tensor y = Tensor::zeros(x.shape());
    const float* px = x.f32();
    float* py = y.f32();
    parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) py[i] = silu_f(px[i]);
    });
    return y;
}

Tensor CpuBackend::swiglu(const Tensor& x) {
    const int64_t two_m = x.dim(-1);
    check(two_m % 2 == 0, "swiglu: last dim ", two_m, " of ", shape_str(x.shape()), " is odd");
    const int64_t m = two_m / 2, rows = x.numel() / two_m;
    Shape out_shape = x.shape();
    out_shape.back() = m;
    Tensor y = Tensor::zeros(out_shape);
    const float* px = x.f32();
    float* py = y.f32();
    parallel_for(rows, 1 + kGrain / std::max<int64_t>(m, 1), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r)
            for (int64_t j = 0; j < m; ++j) py[r * m + j] = silu_f(px[r * two_m + j]) * px[r * two_m + m + j];
    });
    return y;
}

Tensor CpuBackend::add(const Tensor& a, const Tensor& b) {
    check_same_shape(a, b, "add");
    Tensor y = Tensor::zeros(a.shape());
    const float *pa = a.f32(), *pb = b.f32();
    float* py = y.f32();
    for (int64_t i = 0; i < a.numel(); ++i) py[i] = pa[i] + pb[i];
    return y;
}

Tensor CpuBackend::mul(const Tensor& a, const Tensor& b) {
    check_same_shape(a, b, "mul");
    Tensor y = Tensor::zeros(a.shape());
    const float *pa = a.f32(), *pb = b.f32();
    float* py = y.f32();
    for (int64_t i = 0; i < a.numel(); ++i) py[i] = pa[i] * pb[i];
    return y;
}

void CpuBackend::euler_update(Tensor& x, const Tensor& v, const Tensor* v_neg, float guidance, float dt) {
    check_same_shape(x, v, "euler_update");
    if (v_neg) check_same_shape(x, *v_neg, "euler_update (unconditional velocity)");
    float* px = x.f32();
    const float* pv = v.f32();
    const float* pn = v_neg ? v_neg->f32() : nullptr;
    for (int64_t i = 0; i < x.numel(); ++i) {
        const float vi = pn ? pn[i] + guidance * (pv[i] - pn[i]) : pv[i];
        px[i] = px[i] + dt * vi;
    }
}

}  // namespace flux2
