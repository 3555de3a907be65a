#pragma once
// A contiguous n-d array with shared ownership of its storage. Shapes are outermost first, as in
// safetensors and PyTorch. Host tensors are what the CPU backend computes on (F32); device tensors
// are created by the CUDA backend, which installs its own storage and deleter.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace flux2 {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 15, 128]"

enum class Device { cpu, cuda };

class Tensor {
public:
    Tensor() = default;

    // Host allocation, zero-filled.
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
    static Tensor from_f32(const Shape& shape, std::vector<float> values);
    // Wraps external storage (e.g. a CUDA allocation); `owner` keeps it alive.
    static Tensor wrap(const Shape& shape, DType dtype, Device device, void* data, std::shared_ptr<void> owner);

    const Shape& shape() const { return shape_; }
    int64_t dim(int i) const;  // negative i counts from the end
    int ndim() const { return static_cast<int>(shape_.size()); }
    int64_t numel() const { return shape_numel(shape_); }
    size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
    DType dtype() const { return dtype_; }
    Device device() const { return device_; }
    bool defined() const { return owner_ != nullptr || data_ != nullptr; }

    void* raw() const { return data_; }
    // What keeps the storage alive (shared with views and reshapes).
    const std::shared_ptr<void>& storage() const { return owner_; }
    // Typed host access; throws if the tensor is not a host F32 tensor.
    float* f32();
    const float* f32() const;

    // Same storage, new shape (numel must match; one dim may be -1).
    Tensor reshape(const Shape& shape) const;
    // Same storage from `byte_offset` on, viewed as `shape` of `dtype` (must fit inside this tensor's bytes).
    Tensor view(const Shape& shape, DType dtype, size_t byte_offset) const;
    // Deep copy of a host tensor.
    Tensor clone() const;
    std::vector<float> to_vector() const;

private:
    Shape shape_;
    DType dtype_ = DType::F32;
    Device device_ = Device::cpu;
    std::shared_ptr<void> owner_;
    void* data_ = nullptr;
};

}  // namespace flux2
