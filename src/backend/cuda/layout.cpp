// concat and slice: both are strided 2-D copies (outer rows x contiguous inner runs), done by the copy engine
// with cudaMemcpy2DAsync instead of a kernel.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace flux2 {

namespace {
int normalize_axis(int axis, int ndim, const char* op) {
    const int a = axis < 0 ? axis + ndim : axis;
    check(a >= 0 && a < ndim, op, ": axis ", axis, " out of range for a ", ndim, "-d tensor");
    return a;
}

// Elements before `axis` (outer) and after it (inner).
void split_axis(const Shape& s, int axis, int64_t* outer, int64_t* inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; ++i) *outer *= s[i];
    for (size_t i = axis + 1; i < s.size(); ++i) *inner *= s[i];
}

void expect_device(const Tensor& t, const char* op, const char* what) {
    check(t.defined() && t.device() == Device::cuda, op, ": ", what, " must be a tensor on the GPU");
}

// Copies `height` runs of `width` bytes; the runs start every `src_pitch` / `dst_pitch` bytes.
void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t height,
             cudaStream_t stream) {
    if (width == 0 || height == 0) return;
    FLUX2_CUDA_CHECK(
        cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, height, cudaMemcpyDeviceToDevice, stream));
}
}  // namespace

Tensor CudaBackend::concat(const Tensor& a, const Tensor& b, int axis) {
    FLUX2_PROFILE_OP("concat");
    expect_device(a, "concat", "a");
    expect_device(b, "concat", "b");
    check(a.dtype() == b.dtype(), "concat: dtypes ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()), " differ");
    check(a.ndim() == b.ndim(), "concat: ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ in rank");
    const int ax = normalize_axis(axis, a.ndim(), "concat");
    for (int i = 0; i < a.ndim(); ++i)
        check(i == ax || a.shape()[i] == b.shape()[i], "concat along axis ", ax, ": shapes ", shape_str(a.shape()),
              " and ", shape_str(b.shape()), " differ elsewhere");
    Shape out_shape = a.shape();
    out_shape[ax] += b.shape()[ax];
    Tensor out = empty(out_shape, a.dtype());
    int64_t outer, inner;
    split_axis(a.shape(), ax, &outer, &inner);
    const size_t elem = dtype_size(a.dtype());
    const size_t run_a = a.shape()[ax] * inner * elem, run_b = b.shape()[ax] * inner * elem;
    char* po = static_cast<char*>(out.raw());
    copy_2d(po, run_a + run_b, a.raw(), run_a, run_a, outer, stream());
    copy_2d(po + run_a, run_a + run_b, b.raw(), run_b, run_b, outer, stream());
    return out;
}

Tensor CudaBackend::slice(const Tensor& x, int axis, int64_t begin, int64_t count) {
    FLUX2_PROFILE_OP("slice");
    expect_device(x, "slice", "x");
    const int ax = normalize_axis(axis, x.ndim(), "slice");
    const int64_t len = x.shape()[ax];
    check(begin >= 0 && count >= 0 && begin + count <= len, "slice [", begin, ", ", begin + count,
          ") out of range for axis ", ax, " of ", shape_str(x.shape()));
    Shape out_shape = x.shape();
    out_shape[ax] = count;
    int64_t outer, inner;
    split_axis(x.shape(), ax, &outer, &inner);
    const size_t elem = dtype_size(x.dtype());
    // A contiguous range (nothing outside the axis, e.g. a token range of one sample or a chunk of a [1, 6D]
    // modulation vector) is a view, no copy, when it keeps the 16-byte alignment the vector kernels need.
    const size_t offset = static_cast<size_t>(begin * inner) * elem;
    if (outer == 1 && offset % 16 == 0) return x.view(out_shape, x.dtype(), offset);
    Tensor out = empty(out_shape, x.dtype());
    const char* px = static_cast<const char*>(x.raw()) + begin * inner * elem;
    copy_2d(out.raw(), count * inner * elem, px, len * inner * elem, count * inner * elem, outer, stream());
    return out;
}

}  // namespace flux2
