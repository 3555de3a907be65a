// CpuBackend: memory and layout ops.
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/log.h"

namespace flux2 {

void cpu_gemm_nt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool accumulate) {
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                1.0f, a, static_cast<int>(k), b, static_cast<int>(k), accumulate ? 1.0f : 0.0f, c, static_cast<int>(n));
}

Tensor CpuBackend::upload(const Tensor& host_f32) {
    check(host_f32.dtype() == DType::F32 && host_f32.device() == Device::cpu,
          "cpu backend: upload expects a host F32 tensor");
    return host_f32.clone();
}

Tensor CpuBackend::download(const Tensor& t) { return t.clone(); }

void CpuBackend::upload_into(const Tensor& host_f32, Tensor& dst) {
    check(host_f32.dtype() == DType::F32 && host_f32.device() == Device::cpu && dst.dtype() == DType::F32,
          "cpu backend: upload_into expects a host F32 tensor and an F32 destination");
    check(host_f32.shape() == dst.shape(), "cpu backend: upload_into of ", shape_str(host_f32.shape()), " into ",
          shape_str(dst.shape()));
    if (host_f32.nbytes()) std::memcpy(dst.raw(), host_f32.raw(), host_f32.nbytes());
}

Tensor CpuBackend::upload_state(const Tensor& host_f32) { return upload(host_f32); }

void CpuBackend::state_into(const Tensor& state, Tensor& dst) { upload_into(state, dst); }

Tensor CpuBackend::zeros(const Shape& shape) { return Tensor::zeros(shape); }

int64_t CpuBackend::peak_memory_bytes() const {
    // VmHWM rather than getrusage's ru_maxrss: the same high-water mark, but one that clear_refs can reset.
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:   1234 kB"
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

void CpuBackend::reset_peak_memory() {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    if (!clear.flush()) log_debug("cpu backend: /proc/self/clear_refs not writable; the peak stays the process's");
}

int64_t CpuBackend::memory_capacity_bytes() const {
    return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

int64_t CpuBackend::memory_in_use_bytes() const {
    // /proc/self/statm: total and resident pages.
    std::ifstream statm("/proc/self/statm");
    int64_t total = 0, resident = 0;
    statm >> total >> resident;
    return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

namespace {
// Splits a shape around `axis` into (outer, axis length, inner) element counts.
void split_axis(const Shape& s, int axis, int64_t* outer, int64_t* inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; ++i) *outer *= s[i];
    for (size_t i = axis + 1; i < s.size(); ++i) *inner *= s[i];
}
int normalize_axis(int axis, int ndim) {
    int a = axis < 0 ? axis + ndim : axis;
    check(a >= 0 && a < ndim, "axis ", axis, " out of range for a ", ndim, "-d tensor");
    return a;
}
}  // namespace

Tensor CpuBackend::concat(const Tensor& a, const Tensor& b, int axis) {
    check(a.ndim() == b.ndim(), "concat: ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ in rank");
    int ax = normalize_axis(axis, a.ndim());
    for (int i = 0; i < a.ndim(); ++i)
        check(i == ax || a.shape()[i] == b.shape()[i], "concat along axis ", ax, ": shapes ", shape_str(a.shape()),
              " and ", shape_str(b.shape()), " differ elsewhere");
    Shape out_shape = a.shape();
    out_shape[ax] += b.shape()[ax];
    Tensor out = Tensor::zeros(out_shape);
    int64_t outer, inner;
    split_axis(a.shape(), ax, &outer, &inner);
    int64_t na = a.shape()[ax] * inner, nb = b.shape()[ax] * inner;
    const float* pa = a.f32();
    const float* pb = b.f32();
    float* po = out.f32();
    for (int64_t o = 0; o < outer; ++o) {
        std::memcpy(po + o * (na + nb), pa + o * na, na * sizeof(float));
        std::memcpy(po + o * (na + nb) + na, pb + o * nb, nb * sizeof(float));
    }
    return out;
}

Tensor CpuBackend::slice(const Tensor& x, int axis, int64_t begin, int64_t count) {
    int ax = normalize_axis(axis, x.ndim());
    int64_t len = x.shape()[ax];
    check(begin >= 0 && count >= 0 && begin + count <= len, "slice [", begin, ", ", begin + count,
          ") out of range for axis ", ax, " of ", shape_str(x.shape()));
    Shape out_shape = x.shape();
    out_shape[ax] = count;
    Tensor out = Tensor::zeros(out_shape);
    int64_t outer, inner;
    split_axis(x.shape(), ax, &outer, &inner);
    const float* px = x.f32();
    float* po = out.f32();
    for (int64_t o = 0; o < outer; ++o)
        std::memcpy(po + o * count * inner, px + (o * len + begin) * inner, count * inner * sizeof(float));
    return out;
}

}  // namespace flux2
