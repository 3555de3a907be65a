#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"

namespace flux2 {

int64_t shape_numel(const Shape& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string shape_str(const Shape& shape) {
    std::ostringstream os;
    os << '[';
    for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << ']';
    return os.str();
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
    for (int64_t d : shape) check(d >= 0, "negative dimension in shape ", shape_str(shape));
    Tensor t;
    t.shape_ = shape;
    t.dtype_ = dtype;
    size_t bytes = std::max<size_t>(t.nbytes(), 1);
    // 64-byte alignment keeps SIMD loads and BLAS happy.
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    check(p != nullptr, "out of host memory allocating ", bytes, " bytes for a tensor of shape ", shape_str(shape));
    std::memset(p, 0, bytes);
    t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
    t.data_ = p;
    return t;
}

Tensor Tensor::from_f32(const Shape& shape, std::vector<float> values) {
    check(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_f32: ", values.size(),
          " values do not fill shape ", shape_str(shape));
    Tensor t = zeros(shape, DType::F32);
    if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(float));
    return t;
}

Tensor Tensor::wrap(const Shape& shape, DType dtype, Device device, void* data, std::shared_ptr<void> owner) {
    Tensor t;
    t.shape_ = shape;
    t.dtype_ = dtype;
    t.device_ = device;
    t.data_ = data;
    t.owner_ = std::move(owner);
    return t;
}

int64_t Tensor::dim(int i) const {
    int n = ndim();
    int j = i < 0 ? n + i : i;
    check(j >= 0 && j < n, "dimension index ", i, " out of range for shape ", shape_str(shape_));
    return shape_[j];
}

float* Tensor::f32() {
    check(dtype_ == DType::F32 && device_ == Device::cpu, "expected a host F32 tensor, got ", dtype_name(dtype_),
          device_ == Device::cpu ? " on the host" : " on the GPU");
    return static_cast<float*>(data_);
}

const float* Tensor::f32() const { return const_cast<Tensor*>(this)->f32(); }

Tensor Tensor::view(const Shape& shape, DType dtype, size_t byte_offset) const {
    const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
    check(byte_offset + bytes <= nbytes(), "view of ", bytes, " bytes at offset ", byte_offset, " does not fit a ",
          shape_str(shape_), " ", dtype_name(dtype_), " tensor (", nbytes(), " bytes)");
    Tensor t = *this;
    t.shape_ = shape;
    t.dtype_ = dtype;
    t.data_ = static_cast<char*>(data_) + byte_offset;
    return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
    Shape s = shape;
    int64_t known = 1;
    int infer = -1;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == -1) {
            check(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
            infer = static_cast<int>(i);
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) s[infer] = known ? numel() / known : 0;
    check(shape_numel(s) == numel(), "reshape: cannot view ", shape_str(shape_), " as ", shape_str(shape));
    Tensor t = *this;
    t.shape_ = s;
    return t;
}

Tensor Tensor::clone() const {
    check(device_ == Device::cpu, "clone: only host tensors can be cloned on the host");
    Tensor t = zeros(shape_, dtype_);
    if (nbytes()) std::memcpy(t.data_, data_, nbytes());
    return t;
}

std::vector<float> Tensor::to_vector() const {
    const float* p = f32();
    return std::vector<float>(p, p + numel());
}

}  // namespace flux2
